// libFuzzer target: arbitrary bytes as a whole safetensors file. The parser must return OK or an
// error for every input; any crash, sanitizer report or leak is a bug. When it accepts a header,
// the invariants the loader relies on are checked here too, so a parser that accepts something
// inconsistent is caught as well.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tandem::Result<tandem::SafetensorsHeader> r =
      tandem::ParseSafetensorsHeader(data, size, "fuzz.safetensors");
  if (!r.ok()) {
    // Errors must say which file they are about.
    if (r.status().message().find("fuzz.safetensors") == std::string::npos) std::abort();
    return 0;
  }
  const tandem::SafetensorsHeader& h = *r;
  if (h.data_offset != 8 + h.header_bytes || h.data_offset + h.data_bytes != size) std::abort();
  const tandem::SafetensorsEntry* previous = nullptr;
  for (const tandem::SafetensorsEntry& e : h.tensors) {
    if (e.begin > e.end || e.end > h.data_bytes) std::abort();
    if (h.Find(e.name) != &e) std::abort();
    if (previous != nullptr && !(previous->name < e.name)) std::abort();  // sorted, unique
    previous = &e;
    // Touch the first and last byte the loader would read.
    if (e.end > e.begin) {
      volatile uint8_t first = data[h.data_offset + e.begin];
      volatile uint8_t last = data[h.data_offset + e.end - 1];
      (void)first;
      (void)last;
    }
    int64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0) std::abort();
      numel *= d;  // cannot overflow: the parser checked
    }
    if (numel != e.numel) std::abort();
    if (e.dtype &&
        (e.end - e.begin) != static_cast<uint64_t>(numel) * tandem::DTypeSize(*e.dtype)) {
      std::abort();
    }
  }
  return 0;
}
