#include "model/safetensors_header.h"

#include <algorithm>
#include <exception>

#include <nlohmann/json.hpp>

namespace tandem {
namespace {

using nlohmann::json;

struct DTypeBits {
  std::string_view name;
  int bits;
};
// Every dtype of the safetensors format (Rust `safetensors::Dtype`); sub-byte types count bits.
constexpr DTypeBits kDTypes[] = {
    {"BOOL", 8}, {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},
    {"U16", 16}, {"F16", 16},    {"BF16", 16},   {"I32", 32},    {"U32", 32},
    {"F32", 32}, {"F64", 64},    {"I64", 64},    {"U64", 64},    {"C64", 64},
};

std::optional<DType> TandemDType(std::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return std::nullopt;
}

std::string JsonKind(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();
}

// Non-negative JSON integer as uint64; nullopt for anything else.
std::optional<uint64_t> AsUnsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i >= 0) return static_cast<uint64_t>(i);
  }
  return std::nullopt;
}

class EntryParser {
 public:
  EntryParser(const std::string& file, uint64_t data_bytes)
      : file_(file), data_bytes_(data_bytes) {}

  Result<SafetensorsEntry> Parse(const std::string& name, const json& v) const {
    SafetensorsEntry e;
    e.name = name;
    if (!v.is_object()) return Error(name, "entry must be an object, got " + JsonKind(v));

    auto dtype = v.find("dtype");
    if (dtype == v.end()) return Error(name, "missing 'dtype'");
    if (!dtype->is_string())
      return Error(name, "'dtype' must be a string, got " + JsonKind(*dtype));
    e.dtype_name = dtype->get<std::string>();
    const std::optional<int> bits = SafetensorsDTypeBits(e.dtype_name);
    if (!bits) return Error(name, "unknown dtype '" + e.dtype_name + "'");
    e.dtype = TandemDType(e.dtype_name);

    auto shape = v.find("shape");
    if (shape == v.end()) return Error(name, "missing 'shape'");
    if (!shape->is_array()) return Error(name, "'shape' must be a list, got " + JsonKind(*shape));
    uint64_t numel = 1;
    for (const json& d : *shape) {
      if (!d.is_number_integer()) {
        return Error(name, "'shape' entries must be integers, got " + JsonKind(d));
      }
      if (!d.is_number_unsigned() && d.get<int64_t>() < 0) {
        return Error(name,
                     "negative dimension " + std::to_string(d.get<int64_t>()) + " in 'shape'");
      }
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel) ||
          numel > static_cast<uint64_t>(INT64_MAX)) {
        return Error(name, "'shape' element count overflows 64 bits");
      }
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    e.numel = static_cast<int64_t>(numel);

    auto offsets = v.find("data_offsets");
    if (offsets == v.end()) return Error(name, "missing 'data_offsets'");
    if (!offsets->is_array() || offsets->size() != 2) {
      return Error(name, "'data_offsets' must be a list of two integers [begin, end]");
    }
    const std::optional<uint64_t> begin = AsUnsigned((*offsets)[0]);
    const std::optional<uint64_t> end = AsUnsigned((*offsets)[1]);
    if (!begin || !end) {
      return Error(name, "'data_offsets' must be two non-negative integers [begin, end]");
    }
    e.begin = *begin;
    e.end = *end;
    if (e.begin > e.end) {
      return Error(name, "data_offsets begin " + std::to_string(e.begin) + " > end " +
                             std::to_string(e.end));
    }
    if (e.end > data_bytes_) {
      return Error(name, "data_offsets end " + std::to_string(e.end) +
                             " is past the end of the data section (" +
                             std::to_string(data_bytes_) + " bytes); the file is truncated?");
    }
    uint64_t total_bits = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(*bits), &total_bits)) {
      return Error(name, "byte size of 'shape' overflows 64 bits");
    }
    if (total_bits % 8 != 0) {
      return Error(name, std::to_string(numel) + " elements of " + e.dtype_name +
                             " do not fill whole bytes");
    }
    if (e.end - e.begin != total_bits / 8) {
      return Error(name, "data_offsets span " + std::to_string(e.end - e.begin) +
                             " bytes but shape " + ShapeString(e.shape) + " of " + e.dtype_name +
                             " needs " + std::to_string(total_bits / 8));
    }
    return e;
  }

  Status Error(const std::string& name, const std::string& what) const {
    return DataLossError(file_ + ": tensor '" + name + "': " + what);
  }

  static std::string ShapeString(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(shape[i]);
    }
    return s + "]";
  }

 private:
  const std::string& file_;
  uint64_t data_bytes_;
};

Status ParseMetadata(const json& v, const std::string& file,
                     std::map<std::string, std::string>& out) {
  if (!v.is_object()) {
    return DataLossError(file + ": '__metadata__' must be an object of strings, got " +
                         JsonKind(v));
  }
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      return DataLossError(file + ": '__metadata__' value for '" + key +
                           "' must be a string, got " + JsonKind(value));
    }
    out[key] = value.get<std::string>();
  }
  return Status::Ok();
}

// Tensors must not share bytes: a crafted header could otherwise alias one tensor's data as
// another's. Empty tensors occupy no bytes and cannot overlap anything.
Status CheckNoOverlap(const std::vector<SafetensorsEntry>& tensors, const std::string& file) {
  std::vector<const SafetensorsEntry*> by_offset;
  by_offset.reserve(tensors.size());
  for (const SafetensorsEntry& e : tensors) {
    if (e.end > e.begin) by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
              return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
            });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const SafetensorsEntry& prev = *by_offset[i - 1];
    const SafetensorsEntry& cur = *by_offset[i];
    if (cur.begin < prev.end) {
      return DataLossError(file + ": tensor '" + cur.name + "' (bytes [" +
                           std::to_string(cur.begin) + ", " + std::to_string(cur.end) +
                           ")) overlaps tensor '" + prev.name + "' (bytes [" +
                           std::to_string(prev.begin) + ", " + std::to_string(prev.end) + "))");
    }
  }
  return Status::Ok();
}

Result<SafetensorsHeader> ParseImpl(const uint8_t* data, size_t size, const std::string& file) {
  if (size < 8) {
    return DataLossError(file + ": truncated: " + std::to_string(size) +
                         " bytes, but a safetensors file starts with an 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian on any host
  if (n > kMaxSafetensorsHeaderBytes) {
    return DataLossError(file + ": header length " + std::to_string(n) + " exceeds the limit of " +
                         std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (n > size - 8) {
    return DataLossError(file + ": header length " + std::to_string(n) +
                         " runs past the end of the file (" + std::to_string(size) +
                         " bytes); the file is truncated?");
  }
  SafetensorsHeader h;
  h.header_bytes = n;
  h.data_offset = 8 + n;
  h.data_bytes = size - h.data_offset;

  const char* json_begin = reinterpret_cast<const char*>(data + 8);
  json doc;
  try {
    doc = json::parse(json_begin, json_begin + n);
  } catch (const json::exception& e) {
    return DataLossError(file + ": header is not valid JSON: " + e.what());
  }
  if (!doc.is_object()) {
    return DataLossError(file + ": header must be a JSON object, got " + JsonKind(doc));
  }

  EntryParser parser(file, h.data_bytes);
  h.tensors.reserve(doc.size());
  for (const auto& [key, value] : doc.items()) {
    if (key == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(value, file, h.metadata));
      continue;
    }
    ASSIGN_OR_RETURN(SafetensorsEntry e, parser.Parse(key, value));
    h.tensors.push_back(std::move(e));
  }
  // nlohmann objects iterate in key order already; sort anyway so Find's binary search never
  // depends on that detail.
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });
  RETURN_IF_ERROR(CheckNoOverlap(h.tensors, file));
  return h;
}

}  // namespace

std::optional<int> SafetensorsDTypeBits(std::string_view dtype_name) {
  for (const DTypeBits& d : kDTypes) {
    if (d.name == dtype_name) return d.bits;
  }
  return std::nullopt;
}

const SafetensorsEntry* SafetensorsHeader::Find(std::string_view name) const {
  auto it =
      std::lower_bound(tensors.begin(), tensors.end(), name,
                       [](const SafetensorsEntry& e, std::string_view n) { return e.name < n; });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

Result<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                 const std::string& file) {
  // The checks above cover every case we know of; this net turns anything we missed (an
  // allocation failure on a huge shape list, a nlohmann type error) into an error, not a crash.
  try {
    return ParseImpl(data, size, file);
  } catch (const std::exception& e) {
    return DataLossError(file + ": malformed safetensors header: " + e.what());
  }
}

}  // namespace tandem
