// The prefill node's engine: a FCFS queue of prompts, token-budget batching with chunked
// prefill, and for every prompt completed in a step the layer-by-layer PUSH of its KV into the
// blocks its decode node reserved (one KvSendSession per request, started from the
// Transformer's LayerDoneFn so the transfer overlaps the remaining layers). After the forward it
// samples the first token (step 0) and reports it at once (TTFT); after the flush it reports
// KvReady. P's own blocks are freed only once the session reached a terminal state (flush
// completed, or failed and drained), never while a PUT may still read them.
//
// No protobuf here: the service converts messages to PrefillJob and PrefillEvent at its edge.
// Threading: one thread (the node's engine thread) owns this, the Transformer, the KvCache and
// the Transport.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/transfer_session.h"
#include "kv_transfer/transport.h"
#include "model/kv_cache.h"
#include "model/request.h"
#include "model/transformer.h"

namespace tandem {

struct PrefillJob {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams params;              // seed set unless greedy (the router draws it)
  std::string decode_node;            // where the KV goes
  std::vector<int> decode_block_ids;  // the decode node's reservation (prompt + max_tokens)
  int64_t arrival_us = 0;
};

enum class PrefillEventKind {
  kFirstToken,   // -> router
  kKvReady,      // -> decode node: every byte of the KV is visible there
  kAbortDecode,  // -> decode node: release the reservation (no write of ours is in flight)
  kError,        // -> router: the request failed here
};

struct PrefillEvent {
  PrefillEventKind kind = PrefillEventKind::kError;
  std::string request_id;
  std::string decode_node;
  int32_t token = -1;               // kFirstToken, kKvReady: the first token
  bool finished = false;            // kFirstToken: nothing left for the decode node
  FinishReason finish_reason = FinishReason::kNone;
  uint64_t bytes = 0;               // kKvReady
  int64_t transfer_us = 0;          // kKvReady: first PUT posted -> flush complete
  uint32_t num_prompt_tokens = 0;
  int64_t arrival_us = 0, prefill_start_us = 0, first_token_us = 0;
  Status error;                     // kError
};

struct PrefillEngineOptions {
  int32_t max_num_batched_tokens = 2048;
  SessionOptions session;
};

class PrefillEngine {
 public:
  PrefillEngine(Transformer& transformer, KvCache& cache, Transport& transport,
                PrefillEngineOptions options);
  ~PrefillEngine();

  // The pool layout (its compatibility_hash() is what decode nodes must match).
  const KvLayout& layout() const { return layout_; }

  // A decode node whose transport endpoint is connected as `peer`; its pool has
  // `pool_num_blocks` blocks. Replaces an earlier registration of the same node.
  void SetDecodePeer(const std::string& node, PeerId peer, int pool_num_blocks);
  // The decode node is gone: its queued jobs fail and its transfers are aborted (they end in a
  // terminal state; kError events tell the router).
  void RemoveDecodePeer(const std::string& node, std::vector<PrefillEvent>* events);

  // Validates and queues. InvalidArgument (empty prompt, bad token, bad params, too few
  // reserved blocks), OutOfRange (context window), ResourceExhausted (prompt larger than the
  // pool), FailedPrecondition (decode node not connected), AlreadyExists (duplicate id).
  Status Add(PrefillJob job);
  // Drops a queued job, or cancels its transfer; idempotent for unknown ids.
  void Abort(const std::string& id, std::vector<PrefillEvent>* events);

  bool HasQueued() const { return !queue_.empty(); }
  bool HasWork() const { return !queue_.empty() || !transferring_.empty(); }
  // One forward over the queued prompts (no-op when the queue is empty or no blocks are free).
  Status Step(std::vector<PrefillEvent>* events);
  // Advances transfers and timeouts; call every loop iteration.
  void Poll(std::vector<PrefillEvent>* events);

  int32_t num_queued() const { return static_cast<int32_t>(queue_.size()); }
  int64_t queued_tokens() const;
  int32_t num_transferring() const { return static_cast<int32_t>(transferring_.size()); }

 private:
  struct Active;
  struct DecodePeer {
    PeerId peer = 0;
    int pool_num_blocks = 0;
  };

  void Handle(Active& a, SessionAction action, std::vector<PrefillEvent>* events);
  // Frees P's blocks of a request that has ended (session terminal or none).
  void FreeBlocks(Active& a);
  PrefillEvent MakeEvent(const Active& a, PrefillEventKind kind) const;
  bool IsStopToken(const SamplingParams& params, int32_t token) const;

  Transformer& transformer_;
  KvCache& cache_;
  Transport& transport_;
  PrefillEngineOptions options_;
  KvLayout layout_;
  std::map<std::string, DecodePeer> peers_;
  std::deque<std::unique_ptr<Active>> queue_;          // prompt not finished; may hold blocks
  std::vector<std::unique_ptr<Active>> transferring_;  // prompt done, session not terminal
  uint64_t next_key_ = 1;
  std::vector<float> logits_;
};

}  // namespace tandem
