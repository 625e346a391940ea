// A single-process engine: continuous batching with chunked prefill over one Transformer and
// one KvCache. `tandem generate` drives it; the colocated worker (our own goodput baseline)
// and the decode node build on the same step loop.
//
// A step reads as schedule -> run -> postprocess:
//   schedule: every running request that finished its prompt gets one decode token; then
//             waiting/prefilling requests get prompt tokens, FCFS, within the token budget
//             (max_num_batched_tokens) and the sequence cap (max_num_seqs); a prompt that does
//             not fit the remaining budget is chunked.
//   run:      one Transformer::Forward over the mixed batch.
//   post:     sample where a prompt completed or a decode ran; check stops; free finished
//             requests' blocks.
// KV blocks for prompt + max_tokens are reserved at admission, so a running request can never
// run out of blocks and nothing needs preempting; a request is admitted only when
// CanAllocate() says its blocks are there.
// Threading: one thread (the caller's).
#pragma once

#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache.h"
#include "model/request.h"
#include "model/transformer.h"

namespace tandem {

struct EngineOptions {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
};

struct StepOutput {
  int64_t request_id = 0;
  int32_t token = -1;  // -1 when the request ended without a new token (abort, error)
  FinishReason finish_reason = FinishReason::kNone;
};

class Engine {
 public:
  Engine(Transformer& transformer, KvCache& cache, EngineOptions options);

  // Validates and queues a request. Errors: InvalidArgument (empty prompt, token id outside
  // the vocabulary, bad sampling params), OutOfRange (prompt + max_tokens beyond the context
  // window), ResourceExhausted (more KV blocks than the whole pool has).
  Status Add(Request request);
  // The decode node's entry: a request whose prompt K/V another node computed into this
  // cache's blocks and whose first token was sampled there. REQUIRES: block_table holds
  // BlocksForTokens(prompt + max_tokens) blocks taken from cache().pool() (they become the
  // engine's, freed on finish/abort); output == {first token}; params.seed set unless greedy.
  // It joins the running batch when a sequence slot is free, and its next token is drawn with
  // step 1, exactly as if this engine had run the prefill.
  Status AddPrefilled(Request request);
  // Ends a request now and frees its blocks; NotFound if it is unknown or already finished.
  Status Abort(int64_t request_id);

  bool HasWork() const { return !waiting_.empty() || !running_.empty() || !prefilled_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_queued() const { return static_cast<int32_t>(waiting_.size() + prefilled_.size()); }
  Result<std::vector<StepOutput>> Step();

  // The finished request's record (timeline, output), kept until taken.
  std::unique_ptr<Request> TakeFinished(int64_t request_id);
  const KvCache& cache() const { return cache_; }

 private:
  void Finish(Request& r, FinishReason reason);
  bool IsStopToken(const Request& r, int32_t token) const;

  Transformer& transformer_;
  KvCache& cache_;
  EngineOptions options_;
  std::deque<std::unique_ptr<Request>> waiting_;   // no blocks yet
  std::vector<std::unique_ptr<Request>> running_;  // blocks held
  std::deque<std::unique_ptr<Request>> prefilled_;  // blocks held, prompt in cache, not running yet
  std::unordered_map<int64_t, std::unique_ptr<Request>> finished_;
  std::vector<float> logits_;
  std::vector<int32_t> sampled_;  // one token per logits row of the current step
};

}  // namespace tandem
