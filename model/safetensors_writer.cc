#include "model/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

namespace tandem {

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  using nlohmann::json;
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::set<std::string> seen;
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name == "__metadata__")
      return InvalidArgumentError("tensor name '__metadata__' is reserved");
    if (!seen.insert(t.name).second) {
      return InvalidArgumentError("duplicate tensor name '" + t.name + "'");
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return InvalidArgumentError("tensor '" + t.name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    const size_t bytes = static_cast<size_t>(numel) * DTypeSize(t.dtype);
    if (bytes > 0 && t.data == nullptr) {
      return InvalidArgumentError("tensor '" + t.name + "' has no data");
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    return InvalidArgumentError(path + ": cannot encode header: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return InvalidArgumentError(path + ": cannot create: " + std::strerror(errno));
  bool ok = std::fwrite(len, 1, 8, f.get()) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f.get()) == text.size();
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    if (sizes[i] > 0) ok = std::fwrite(tensors[i].data, 1, sizes[i], f.get()) == sizes[i];
  }
  if (!ok) return InvalidArgumentError(path + ": write failed: " + std::strerror(errno));
  if (std::fclose(f.release()) != 0) {
    return InvalidArgumentError(path + ": close failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace tandem
