// Writes a safetensors file that HF's `safetensors` library reads back: the JSON header is
// padded with spaces so the data section starts 8-byte aligned, and tensors are laid out
// back to back in the order given. Used by `tandem make-model` and by tests.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"

namespace tandem {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * DTypeSize(dtype) bytes, row-major
};

// InvalidArgument for a bad tensor list (duplicate or reserved name, negative dim, null data);
// InvalidArgument naming the path when the file cannot be written.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace tandem
