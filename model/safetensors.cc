#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include "common/file_io.h"

namespace tandem {
namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// Shard names come from a file we did not write; keep them inside the model directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<std::shared_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::OpenFile(
    const std::string& path) {
  std::shared_ptr<SafetensorsCheckpoint> ckpt(new SafetensorsCheckpoint());
  ckpt->source_ = path;
  ASSIGN_OR_RETURN(size_t shard, ckpt->AddShard(path));
  const SafetensorsHeader& header = ckpt->shards_[shard].header;
  for (size_t i = 0; i < header.tensors.size(); ++i) {
    ckpt->index_[header.tensors[i].name] = Location{shard, i};
  }
  return ckpt;
}

Result<std::shared_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& model_dir) {
  // Like HF, a single-file checkpoint wins over an index when both are present.
  const std::string single = JoinPath(model_dir, kSingleFile);
  if (IsRegularFile(single)) return OpenFile(single);
  const std::string index_path = JoinPath(model_dir, kIndexFile);
  if (!IsRegularFile(index_path)) {
    return NotFoundError(model_dir + ": no " + kSingleFile + " or " + kIndexFile +
                         " (only safetensors checkpoints are supported)");
  }
  std::shared_ptr<SafetensorsCheckpoint> ckpt(new SafetensorsCheckpoint());
  ckpt->source_ = index_path;
  RETURN_IF_ERROR(ckpt->LoadIndex(index_path, model_dir));
  return ckpt;
}

Status SafetensorsCheckpoint::LoadIndex(const std::string& index_path,
                                        const std::string& model_dir) {
  using nlohmann::json;
  ASSIGN_OR_RETURN(std::string text, ReadTextFile(index_path));
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return DataLossError(index_path + ": not valid JSON: " + e.what());
  }
  if (!doc.is_object()) return DataLossError(index_path + ": expected a JSON object");
  auto map = doc.find("weight_map");
  if (map == doc.end() || !map->is_object()) {
    return DataLossError(index_path + ": missing 'weight_map' object");
  }
  if (map->empty()) return DataLossError(index_path + ": 'weight_map' lists no tensors");

  // Each shard is mapped and validated once, however many tensors point at it.
  std::map<std::string, size_t> shard_by_name;
  for (const auto& [tensor, value] : map->items()) {
    if (!value.is_string()) {
      return DataLossError(index_path + ": weight_map entry for tensor '" + tensor +
                           "' must be a file name string");
    }
    const std::string shard_name = value.get<std::string>();
    if (!IsPlainFileName(shard_name)) {
      return DataLossError(index_path + ": weight_map entry for tensor '" + tensor + "' names '" +
                           shard_name + "', which is not a file name inside the model directory");
    }
    auto it = shard_by_name.find(shard_name);
    if (it == shard_by_name.end()) {
      const std::string shard_path = JoinPath(model_dir, shard_name);
      Result<size_t> added = AddShard(shard_path);
      if (!added.ok()) {
        return added.status().WithContext("shard listed in " + index_path);
      }
      it = shard_by_name.emplace(shard_name, *added).first;
    }
    const Shard& shard = shards_[it->second];
    const SafetensorsEntry* entry = shard.header.Find(tensor);
    if (entry == nullptr) {
      return DataLossError(index_path + ": weight_map puts tensor '" + tensor + "' in " +
                           shard.file->path() + ", which does not contain it");
    }
    index_[tensor] = Location{it->second, static_cast<size_t>(entry - shard.header.tensors.data())};
  }
  return Status::Ok();
}

Result<size_t> SafetensorsCheckpoint::AddShard(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  ASSIGN_OR_RETURN(SafetensorsHeader header,
                   ParseSafetensorsHeader(file->data(), file->size(), path));
  shards_.push_back(Shard{std::move(file), std::move(header)});
  return shards_.size() - 1;
}

Result<TensorInfo> SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return NotFoundError(source_ + ": no tensor '" + name + "'");
  const Shard& shard = shards_[it->second.shard];
  const SafetensorsEntry& e = shard.header.tensors[it->second.entry];
  if (!e.dtype) {
    return InvalidArgumentError(shard.file->path() + ": tensor '" + name + "' has dtype " +
                                e.dtype_name + ", which Tandem does not load (F32, F16, BF16)");
  }
  TensorInfo info;
  info.name = name;
  info.file = shard.file->path();
  info.dtype = *e.dtype;
  info.shape = e.shape;
  info.bytes = static_cast<size_t>(e.end - e.begin);
  // An empty tensor may sit at the very end of an empty data section; never form a pointer
  // from a null mapping.
  info.data = shard.file->data() == nullptr
                  ? nullptr
                  : shard.file->data() + shard.header.data_offset + e.begin;
  return info;
}

std::vector<std::string> SafetensorsCheckpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, loc] : index_) names.push_back(name);
  return names;
}

std::vector<std::string> SafetensorsCheckpoint::files() const {
  std::vector<std::string> out;
  out.reserve(shards_.size());
  for (const Shard& s : shards_) out.push_back(s.file->path());
  return out;
}

const std::map<std::string, std::string>& SafetensorsCheckpoint::metadata() const {
  static const std::map<std::string, std::string> kEmpty;
  return shards_.empty() ? kEmpty : shards_.front().header.metadata;
}

}  // namespace tandem
