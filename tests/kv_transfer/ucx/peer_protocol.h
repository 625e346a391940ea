// What the UCX test (the decode side, in the gtest process) and kv_transfer_peer (the prefill
// side, a separate process) say to each other over their socketpair, and the byte pattern the
// sender writes so the receiver can check every byte without a copy of the source.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem::kv_test {

enum FrameType : uint32_t {
  kEndpoint = 1,     // decode -> prefill: PeerEndpoint of the decode pool
  kReservation = 2,  // decode -> prefill: KvReservation
  kKvReady = 3,      // prefill -> decode: KvReadyNotice (after the flush completed)
  kStats = 4,        // prefill -> decode: u64s {descriptors_posted, bytes_posted}
  kBye = 5,          // decode -> prefill: verified, you may tear down
  kError = 6,        // either way: text of a Status
};

// The 32-bit word `word` of block `block` of (`layer`, K=0/V=1) in the sender's pool.
inline uint32_t PatternWord(uint64_t seed, int layer, int kind, int block, size_t word) {
  uint64_t x = seed ^ (static_cast<uint64_t>(layer) << 48) ^ (static_cast<uint64_t>(kind) << 40) ^
               (static_cast<uint64_t>(block) << 24) ^ word;
  x += 0x9e3779b97f4a7c15ull;  // splitmix64 finaliser
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(x ^ (x >> 31));
}

constexpr uint32_t kSentinel = 0xdeadbeefu;

}  // namespace tandem::kv_test
