// Fixed-size KV blocks: a free list, per-block reference counts (blocks shared by sequences),
// and, once enabled, a prefix cache over full blocks.
// "Can I?" (CanAllocate) is separate from "do it" (Allocate), as the schedulers ask first and
// commit later. Allocation is all-or-nothing: a request never holds half of what it asked for.
//
// Prefix cache (EnablePrefixCaching): a full block whose K/V is computed may be registered under
// its content hash (model/block_hash.h) with its token ids. A registered block whose last
// reference goes does not return to the free list: it stays cached, evictable, in LRU order
// (the tail blocks of a freed sequence first, since a longer prefix is rarer than its start).
// MatchPrefix finds the longest run of cached blocks equal to a sequence's start; Acquire takes
// references on them (reviving evictable ones). Allocate uses free blocks first and then evicts
// the least recently freed cached blocks, so caching never makes an allocation fail.
//
// Invariants: a block is in exactly one of {free list (count 0, unregistered), evictable LRU
// (count 0, registered), in use (count >= 1, registered or not)}; num_free() counts the first
// two, so num_free() + (blocks in use) == num_blocks(). A block in use is never evicted.
// Threading: not thread-safe; owned by the engine thread of its node.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/block_hash.h"
#include "model/kv_blocks.h"

namespace tandem {

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  // Blocks an allocation may take: never used, or cached and unreferenced (evictable).
  int32_t num_free() const { return static_cast<int32_t>(free_list_.size()) + lru_size_; }
  bool CanAllocate(int32_t count) const { return count >= 0 && count <= num_free(); }

  // Takes `count` blocks, each with ref count 1 (free blocks first, then evicting cached ones).
  // ResourceExhausted (and nothing taken) when fewer than `count` are free.
  Result<std::vector<int32_t>> Allocate(int32_t count);
  // The same, appended to `table` (a sequence growing its block table without a temporary).
  Status AllocateAppend(int32_t count, std::vector<int32_t>* table);

  // Adds a reference to a block in use (a second sequence sharing it).
  Status AddRef(int32_t block);

  // Drops one reference to each block; blocks reaching 0 return to the free list, or, when
  // registered in the prefix cache, become evictable. Checks all blocks before changing any, so
  // a bad id or a double free changes nothing.
  Status Free(std::span<const int32_t> blocks);

  int32_t RefCount(int32_t block) const;

  // --- Prefix cache ---------------------------------------------------------------------
  // Turns the prefix cache on for blocks of `block_size` tokens. Idempotent for one size;
  // InvalidArgument for a bad or different size.
  Status EnablePrefixCaching(int32_t block_size);
  bool prefix_caching() const { return cache_block_size_ > 0; }
  int32_t cache_block_size() const { return cache_block_size_; }

  // The cached blocks holding tokens[0 .. k * block_size) for the largest k <= max_blocks (the
  // hash chain from `root`, the token ids compared on every hit); `hashes` gets their hashes.
  // Empty when caching is off.
  std::vector<int32_t> MatchPrefix(const BlockHash& root, std::span<const int32_t> tokens, int32_t max_blocks,
                                   std::vector<BlockHash>* hashes = nullptr) const;
  // How many of `blocks` are cached and unreferenced: Acquire takes them out of num_free().
  int32_t CountEvictable(std::span<const int32_t> blocks) const;
  // What a table of `total` blocks starting with the cached `hits` takes from num_free(): its
  // fresh blocks and the hits nobody holds (reviving them takes them too). For CanAllocate.
  int32_t BlocksToTake(std::span<const int32_t> hits, int32_t total) const {
    return total - static_cast<int32_t>(hits.size()) + CountEvictable(hits);
  }
  // That table: references on `hits` (MatchPrefix's), then total - hits.size() fresh blocks.
  // All or nothing: ResourceExhausted (nothing taken) when it does not fit.
  Result<std::vector<int32_t>> AllocateAfter(std::vector<int32_t> hits, int32_t total);
  // Takes a reference on each of `blocks`, cached ones (any count) or blocks in use. Checks all
  // first: FailedPrecondition (nothing changed) for a block that is free and uncached.
  Status Acquire(std::span<const int32_t> blocks);
  // Registers `block` (in use; its K/V computed) as holding `tokens` (one block's worth) under
  // `hash`. Nothing happens when the block is registered already or another block holds that
  // content (the cache keeps one copy; the caller's block stays private and is freed as usual).
  void Register(int32_t block, const BlockHash& hash, std::span<const int32_t> tokens);
  // Registered blocks (in use or evictable) and evictable ones.
  int32_t num_cached() const { return static_cast<int32_t>(cached_.size()); }
  int32_t num_evictable() const { return lru_size_; }
  // Drops every evictable cached block (to the free list); blocks in use stay registered.
  void ResetPrefixCache();

  // Cache events, for a router's index of which node holds which prefix (prefill nodes report
  // them with their load). Off until enabled: nobody would drain them otherwise.
  // The net change since the last TakeCacheEvents (disjoint: a hash stored and then evicted
  // in between is in `removed` only, one evicted and then stored again in `stored` only).
  struct CacheEvents {
    std::vector<BlockHash> stored;
    std::vector<BlockHash> removed;
  };
  void RecordCacheEvents(bool on) { record_events_ = on; }
  CacheEvents TakeCacheEvents();
  // Every registered block's hash (a snapshot that replaces a router's view of this pool).
  std::vector<BlockHash> CachedHashes() const;

 private:
  Status CheckInUse(int32_t block) const;
  bool Registered(int32_t block) const { return block_hashes_.count(block) != 0; }
  void Unregister(int32_t block);
  void LruPushBack(int32_t block);
  void LruRemove(int32_t block);
  int32_t Evict();  // the least recently freed cached block, unregistered; -1 when none

  std::vector<int32_t> ref_counts_;  // [num_blocks]
  std::vector<int32_t> free_list_;   // LIFO: recently freed blocks are reused first (warm caches)

  int32_t cache_block_size_ = 0;  // 0: prefix caching off
  struct CachedBlock {
    int32_t block = -1;
    std::vector<int32_t> tokens;
  };
  std::unordered_map<BlockHash, CachedBlock, BlockHashHasher> cached_;  // content -> block
  std::unordered_map<int32_t, BlockHash> block_hashes_;                 // registered block -> content
  // Evictable blocks as a doubly linked list over block ids (-1 ends), oldest at the head.
  std::vector<int32_t> lru_prev_, lru_next_;
  std::vector<uint8_t> in_lru_;
  int32_t lru_head_ = -1, lru_tail_ = -1, lru_size_ = 0;
  bool record_events_ = false;
  std::vector<std::pair<BlockHash, bool>> events_;  // in order; true: stored
};

}  // namespace tandem
