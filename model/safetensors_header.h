// The safetensors header parser, kept free of I/O so that it can be fuzzed on its own
// (tests/fuzz/safetensors_header_fuzzer.cc). Its only dependencies are common/status and
// kernels/dtype.h (plus the header-only nlohmann json).
//
// File layout: [u64 little-endian N][N bytes of JSON][data section]. The JSON maps each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data
// section) and may carry "__metadata__": {string: string}.
//
// Error codes: DataLoss for anything that makes the bytes not a valid safetensors file
// (truncation, bad JSON, wrong JSON types, unknown dtype, offsets out of range, sizes that do
// not match, overlapping tensors). Every message names the file, and the tensor when there is
// one. A corrupt input must produce an error, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"

namespace tandem {

// Headers beyond this are rejected before parsing (the reference implementation's limit too).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;      // as written: "BF16", "I64", "F8_E4M3", ...
  std::optional<DType> dtype;  // set only for the dtypes Tandem loads (F32, F16, BF16)
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint64_t begin = 0;  // byte offsets relative to the data section: [begin, end)
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;  // N
  uint64_t data_offset = 0;   // 8 + N: where the data section starts in the file
  uint64_t data_bytes = 0;    // file size - data_offset
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> tensors;  // sorted by name

  // nullptr when absent.
  const SafetensorsEntry* Find(std::string_view name) const;
};

// Parses and validates the header of a whole safetensors file held in [data, data + size).
// `file` is used in error messages only.
Result<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                 const std::string& file);

// Bits per element of a safetensors dtype name ("BF16" -> 16, "F4" -> 4); nullopt if unknown.
std::optional<int> SafetensorsDTypeBits(std::string_view dtype_name);

}  // namespace tandem
