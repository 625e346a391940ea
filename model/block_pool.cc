#include "model/block_pool.h"

#include <algorithm>
#include <string>

namespace tandem {

BlockPool::BlockPool(int32_t num_blocks) : ref_counts_(num_blocks, 0) {
  free_list_.reserve(num_blocks);
  // Pushed in reverse so that a fresh pool hands out 0, 1, 2, ... (contiguous runs make
  // fewer transfer descriptors).
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

Result<std::vector<int32_t>> BlockPool::Allocate(int32_t count) {
  std::vector<int32_t> blocks;
  RETURN_IF_ERROR(AllocateAppend(count, &blocks));
  return blocks;
}

Status BlockPool::AllocateAppend(int32_t count, std::vector<int32_t>* table) {
  if (count < 0) return InvalidArgumentError("cannot allocate " + std::to_string(count) + " blocks");
  if (!CanAllocate(count)) {
    return ResourceExhaustedError("KV block pool exhausted: asked for " + std::to_string(count) + " blocks, " +
                                  std::to_string(num_free()) + " of " + std::to_string(num_blocks()) + " free");
  }
  table->reserve(table->size() + static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    int32_t block;
    if (!free_list_.empty()) {
      block = free_list_.back();
      free_list_.pop_back();
    } else {
      block = Evict();  // CanAllocate counted the evictable blocks: there is one
    }
    ref_counts_[block] = 1;
    table->push_back(block);
  }
  return Status::Ok();
}

Status BlockPool::CheckInUse(int32_t block) const {
  if (block < 0 || block >= num_blocks()) {
    return InvalidArgumentError("block id " + std::to_string(block) + " out of range [0, " +
                                std::to_string(num_blocks()) + ")");
  }
  if (ref_counts_[block] == 0) {
    return FailedPreconditionError("block " + std::to_string(block) + " is not in use (double free?)");
  }
  return Status::Ok();
}

Status BlockPool::AddRef(int32_t block) {
  RETURN_IF_ERROR(CheckInUse(block));
  ++ref_counts_[block];
  return Status::Ok();
}

Status BlockPool::Free(std::span<const int32_t> blocks) {
  // Validate the whole list first, so a failure leaves the pool untouched: drop every reference
  // tentatively (a repeat must find one left), then put them all back. No allocation: a request's
  // end frees its table on every engine's hot path.
  Status bad;
  size_t dropped = 0;
  for (; dropped < blocks.size(); ++dropped) {
    const int32_t b = blocks[dropped];
    if (b >= 0 && b < num_blocks() && ref_counts_[b] == 0 &&
        std::find(blocks.begin(), blocks.begin() + static_cast<ptrdiff_t>(dropped), b) !=
            blocks.begin() + static_cast<ptrdiff_t>(dropped)) {
      bad = FailedPreconditionError("block " + std::to_string(b) +
                                    " freed more times than it is referenced (double free)");
      break;
    }
    bad = CheckInUse(b);
    if (!bad.ok()) break;
    --ref_counts_[b];
  }
  for (size_t i = 0; i < dropped; ++i) ++ref_counts_[blocks[i]];
  RETURN_IF_ERROR(bad);
  // In reverse: a sequence's tail blocks become the oldest evictable ones, so its start (the
  // part other requests share) stays cached longest.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t b = *it;
    if (--ref_counts_[b] != 0) continue;
    if (Registered(b)) {
      LruPushBack(b);
    } else {
      free_list_.push_back(b);
    }
  }
  return Status::Ok();
}

int32_t BlockPool::RefCount(int32_t block) const {
  if (block < 0 || block >= num_blocks()) return 0;
  return ref_counts_[block];
}

Status BlockPool::EnablePrefixCaching(int32_t block_size) {
  if (block_size <= 0) return InvalidArgumentError("prefix caching needs a positive block size");
  if (cache_block_size_ != 0 && cache_block_size_ != block_size) {
    return InvalidArgumentError("the pool caches blocks of " + std::to_string(cache_block_size_) + " tokens, not " +
                                std::to_string(block_size));
  }
  cache_block_size_ = block_size;
  if (lru_prev_.empty()) {
    lru_prev_.assign(ref_counts_.size(), -1);
    lru_next_.assign(ref_counts_.size(), -1);
    in_lru_.assign(ref_counts_.size(), 0);
  }
  return Status::Ok();
}

std::vector<int32_t> BlockPool::MatchPrefix(const BlockHash& root, std::span<const int32_t> tokens, int32_t max_blocks,
                                            std::vector<BlockHash>* hashes) const {
  std::vector<int32_t> out;
  if (hashes) hashes->clear();
  if (!prefix_caching()) return out;
  const size_t bs = static_cast<size_t>(cache_block_size_);
  const size_t n = std::min(static_cast<size_t>(std::max(max_blocks, 0)), tokens.size() / bs);
  BlockHash h = root;
  for (size_t i = 0; i < n; ++i) {
    const std::span<const int32_t> chunk = tokens.subspan(i * bs, bs);
    h = ChainBlockHash(h, chunk);
    auto it = cached_.find(h);
    if (it == cached_.end() || !std::equal(chunk.begin(), chunk.end(), it->second.tokens.begin())) break;
    out.push_back(it->second.block);
    if (hashes) hashes->push_back(h);
  }
  return out;
}

int32_t BlockPool::CountEvictable(std::span<const int32_t> blocks) const {
  int32_t n = 0;
  for (int32_t b : blocks) n += (b >= 0 && b < num_blocks() && ref_counts_[b] == 0 && Registered(b)) ? 1 : 0;
  return n;
}

Status BlockPool::Acquire(std::span<const int32_t> blocks) {
  for (int32_t b : blocks) {
    if (b < 0 || b >= num_blocks()) return InvalidArgumentError("block id " + std::to_string(b) + " out of range");
    if (ref_counts_[b] == 0 && !Registered(b)) {
      return FailedPreconditionError("block " + std::to_string(b) + " is free and not cached");
    }
  }
  for (int32_t b : blocks) {
    if (ref_counts_[b]++ == 0) LruRemove(b);
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> BlockPool::AllocateAfter(std::vector<int32_t> hits, int32_t total) {
  const int32_t fresh = total - static_cast<int32_t>(hits.size());
  if (fresh < 0) return InvalidArgumentError("more cached blocks than the table holds");
  const int32_t take = BlocksToTake(hits, total);
  if (!CanAllocate(take)) {
    return ResourceExhaustedError("KV block pool exhausted: asked for " + std::to_string(take) + " blocks, " +
                                  std::to_string(num_free()) + " of " + std::to_string(num_blocks()) + " free");
  }
  RETURN_IF_ERROR(Acquire(hits));
  Result<std::vector<int32_t>> taken = Allocate(fresh);  // fits: checked above
  if (!taken.ok()) {
    Free(hits).IgnoreError();
    return taken.status();
  }
  hits.insert(hits.end(), taken->begin(), taken->end());
  return hits;
}

void BlockPool::Register(int32_t block, const BlockHash& hash, std::span<const int32_t> tokens) {
  if (!prefix_caching() || block < 0 || block >= num_blocks() || ref_counts_[block] == 0) return;
  if (static_cast<int32_t>(tokens.size()) != cache_block_size_) return;
  if (Registered(block) || cached_.count(hash) != 0) return;
  cached_.emplace(hash, CachedBlock{block, std::vector<int32_t>(tokens.begin(), tokens.end())});
  block_hashes_.emplace(block, hash);
  if (record_events_) events_.emplace_back(hash, true);
}

BlockPool::CacheEvents BlockPool::TakeCacheEvents() {
  std::unordered_map<BlockHash, bool, BlockHashHasher> last;
  for (const auto& [hash, stored] : events_) last[hash] = stored;
  events_.clear();
  CacheEvents out;
  for (const auto& [hash, stored] : last) (stored ? out.stored : out.removed).push_back(hash);
  return out;
}

std::vector<BlockHash> BlockPool::CachedHashes() const {
  std::vector<BlockHash> out;
  out.reserve(cached_.size());
  for (const auto& [hash, block] : cached_) out.push_back(hash);
  return out;
}

void BlockPool::ResetPrefixCache() {
  while (lru_size_ > 0) free_list_.push_back(Evict());
}

void BlockPool::Unregister(int32_t block) {
  auto it = block_hashes_.find(block);
  if (it == block_hashes_.end()) return;
  if (record_events_) events_.emplace_back(it->second, false);
  cached_.erase(it->second);
  block_hashes_.erase(it);
}

void BlockPool::LruPushBack(int32_t b) {
  lru_prev_[b] = lru_tail_;
  lru_next_[b] = -1;
  if (lru_tail_ >= 0) {
    lru_next_[lru_tail_] = b;
  } else {
    lru_head_ = b;
  }
  lru_tail_ = b;
  in_lru_[b] = 1;
  ++lru_size_;
}

void BlockPool::LruRemove(int32_t b) {
  if (!in_lru_[b]) return;
  const int32_t p = lru_prev_[b], n = lru_next_[b];
  if (p >= 0) {
    lru_next_[p] = n;
  } else {
    lru_head_ = n;
  }
  if (n >= 0) {
    lru_prev_[n] = p;
  } else {
    lru_tail_ = p;
  }
  lru_prev_[b] = lru_next_[b] = -1;
  in_lru_[b] = 0;
  --lru_size_;
}

int32_t BlockPool::Evict() {
  const int32_t b = lru_head_;
  if (b < 0) return -1;
  LruRemove(b);
  Unregister(b);
  return b;
}

}  // namespace tandem
