// A Hugging Face safetensors checkpoint: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}). Every file is
// memory-mapped read-only once and validated in full (model/safetensors_header.h) before any
// tensor is handed out, so a corrupt checkpoint fails at Open with a message naming the file
// and the tensor, never later in a kernel.
//
// Error codes: NotFound (no checkpoint, missing shard, unknown tensor), DataLoss (corrupt file
// or index), InvalidArgument (a valid tensor of a dtype Tandem does not load, e.g. I64/F64/F8).
//
// Thread-safety: immutable after Open; any thread may call the const methods.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"
#include "model/mapped_file.h"
#include "model/safetensors_header.h"

namespace tandem {

struct TensorInfo {
  std::string name;
  std::string file;  // path of the file that holds it
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // into the mapping; valid while the checkpoint lives
  size_t bytes = 0;

  int64_t numel() const;
  std::string ShapeString() const;  // "[256, 1024]"
};

class SafetensorsCheckpoint {
 public:
  // Opens DIR/model.safetensors if present, else DIR/model.safetensors.index.json.
  static Result<std::shared_ptr<SafetensorsCheckpoint>> Open(const std::string& model_dir);
  // Opens a single safetensors file.
  static Result<std::shared_ptr<SafetensorsCheckpoint>> OpenFile(const std::string& path);

  // NotFound if absent; InvalidArgument if its dtype is not F32/F16/BF16.
  Result<TensorInfo> Find(const std::string& name) const;
  bool Contains(const std::string& name) const { return index_.count(name) != 0; }
  std::vector<std::string> TensorNames() const;  // sorted
  size_t num_tensors() const { return index_.size(); }
  std::vector<std::string> files() const;  // the mapped files, in the order they were opened
  // The first file's __metadata__ (HF writes {"format": "pt"}).
  const std::map<std::string, std::string>& metadata() const;
  // Where the checkpoint came from (the single file or the index), for messages.
  const std::string& source() const { return source_; }

 private:
  struct Shard {
    std::unique_ptr<MappedFile> file;
    SafetensorsHeader header;
  };
  struct Location {
    size_t shard;
    size_t entry;  // index into shards_[shard].header.tensors
  };

  SafetensorsCheckpoint() = default;
  Result<size_t> AddShard(const std::string& path);
  Status LoadIndex(const std::string& index_path, const std::string& model_dir);

  std::string source_;
  std::vector<Shard> shards_;
  std::map<std::string, Location> index_;
};

}  // namespace tandem
