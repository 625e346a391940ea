// Content identity of a full KV block for prefix caching: a chain hash over the block's token ids
// and its parent block's hash, rooted in a per-tenant salt (the request's cache_salt), so equal
// hashes mean equal prefixes from position 0 and equal salts.
//
// Why a truncated SHA-256 (128 bits) and not a fast 64-bit mix: a collision would alias two
// different prefixes and hand one request another's KV (wrong tokens, or across tenants a leak
// of what someone else's prompt produced). With 128 bits an accidental collision needs ~2^64
// distinct blocks, and SHA-256 gives no shortcut to constructing one on purpose; a 64-bit
// non-cryptographic hash can be collided deliberately in seconds. The cost is ~0.3 µs a block
// (16 tokens), next to a forward pass of milliseconds. The pool also compares the token ids on
// every hit, so even a SHA-256 collision inside one block's tokens could not alias.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct BlockHash {
  uint64_t hi = 0;
  uint64_t lo = 0;
  friend bool operator==(const BlockHash&, const BlockHash&) = default;
};

struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 0x9e3779b97f4a7c15ULL)); }
};

// The parent of a sequence's first block: what separates tenants (empty salt: the shared cache).
BlockHash PrefixRoot(std::string_view cache_salt);
// The hash of a block holding `tokens` after the prefix whose last block hashed to `parent`.
BlockHash ChainBlockHash(const BlockHash& parent, std::span<const int32_t> tokens);

// The chain hashes of the first full blocks of `tokens` (at most `max_blocks`), from `root`.
std::vector<BlockHash> ChainBlockHashes(const BlockHash& root, std::span<const int32_t> tokens, int32_t block_size,
                                        int32_t max_blocks);

// Hashes on the wire (LoadReport.cache_stored/removed): 16 bytes each, concatenated.
void AppendBlockHashes(std::span<const BlockHash> hashes, std::string* out);
// A trailing partial hash (a corrupt report) is ignored.
std::vector<BlockHash> ParseBlockHashes(std::string_view bytes);

}  // namespace tandem
