// A read-only, private memory mapping of a whole file, unmapped when the object dies.
// Checkpoint tensors are used in place from such mappings, so nothing is copied on the CPU.
//
// The file must not be truncated while mapped: reading pages past the new end raises SIGBUS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace tandem {

class MappedFile {
 public:
  // NotFound if `path` does not exist; InvalidArgument if it is not a regular file or cannot be
  // opened or mapped. An empty file maps to data() == nullptr, size() == 0.
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tandem
