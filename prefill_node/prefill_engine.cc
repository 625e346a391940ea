#include "prefill_node/prefill_engine.h"

#include <algorithm>
#include <string>

#include "common/logging.h"
#include "model/sampler.h"
#include "node/node_runtime.h"

namespace tandem {

struct PrefillEngine::Active {
  PrefillJob job;
  uint64_t key = 0;                 // the session's request id
  std::vector<int32_t> blocks;      // P's blocks for the prompt
  int32_t num_computed = 0;
  std::unique_ptr<KvSendSession> session;
  bool session_released = false;    // the session said its transfers are over
  bool aborted_locally = false;     // finished at the first token, or the router aborted
  int32_t first_token = -1;
  int64_t prefill_start_us = 0;
  int64_t first_token_us = 0;
  SessionClock::time_point transfer_start{};
};

PrefillEngine::PrefillEngine(Transformer& transformer, KvCache& cache, Transport& transport,
                             PrefillEngineOptions options)
    : transformer_(transformer),
      cache_(cache),
      transport_(transport),
      options_(options),
      layout_(LayoutOf(cache, transformer.config())) {}

PrefillEngine::~PrefillEngine() {
  // Sessions abort themselves in their destructors; blocks go back with the cache.
  for (auto& a : transferring_) {
    if (a->session && !IsTerminal(a->session->state())) {
      (void)a->session->Abort(AbortedError("prefill engine shut down"), SessionClock::now());
    }
  }
}

void PrefillEngine::SetDecodePeer(const std::string& node, PeerId peer, int pool_num_blocks) {
  peers_[node] = DecodePeer{peer, pool_num_blocks};
}

void PrefillEngine::RemoveDecodePeer(const std::string& node, std::vector<PrefillEvent>* events) {
  peers_.erase(node);
  const Status gone = UnavailableError("decode node " + node + " is down");
  for (auto it = queue_.begin(); it != queue_.end();) {
    if ((*it)->job.decode_node != node) {
      ++it;
      continue;
    }
    PrefillEvent e = MakeEvent(**it, PrefillEventKind::kError);
    e.error = gone;
    events->push_back(std::move(e));
    FreeBlocks(**it);
    it = queue_.erase(it);
  }
  for (auto& a : transferring_) {
    if (a->job.decode_node == node && a->session && !IsTerminal(a->session->state())) {
      Handle(*a, a->session->Abort(gone, SessionClock::now()), events);
    }
  }
}

bool PrefillEngine::IsStopToken(const SamplingParams& params, int32_t token) const {
  if (!params.ignore_eos) {
    const auto& eos = transformer_.config().eos_token_ids;
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) return true;
  }
  return std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), token) !=
         params.stop_token_ids.end();
}

int64_t PrefillEngine::queued_tokens() const {
  int64_t n = 0;
  for (const auto& a : queue_) n += static_cast<int64_t>(a->job.prompt.size()) - a->num_computed;
  return n;
}

Status PrefillEngine::Add(PrefillJob job) {
  const ModelConfig& c = transformer_.config();
  const std::string who = "request " + job.id + ": ";
  if (job.id.empty()) return InvalidArgumentError("request id is empty");
  if (job.prompt.empty()) return InvalidArgumentError(who + "prompt is empty");
  for (int32_t t : job.prompt) {
    if (t < 0 || t >= c.vocab_size) {
      return InvalidArgumentError(who + "prompt token id " + std::to_string(t) +
                                  " outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    }
  }
  RETURN_IF_ERROR(job.params.Validate().WithContext(who));
  if (!job.params.greedy() && !job.params.seed.has_value()) {
    return InvalidArgumentError(who + "sampled request without a seed (the router draws it, so "
                                "that prefill and decode nodes draw from the same stream)");
  }
  const int64_t total = static_cast<int64_t>(job.prompt.size()) + job.params.max_tokens;
  if (total > c.max_position_embeddings) {
    return OutOfRangeError(who + "prompt + max_tokens (" + std::to_string(total) +
                           ") exceeds the context window of " + std::to_string(c.max_position_embeddings));
  }
  const int32_t prompt_blocks = BlocksForTokens(static_cast<int64_t>(job.prompt.size()), cache_.block_size());
  if (prompt_blocks > cache_.num_blocks()) {
    return ResourceExhaustedError(who + "prompt needs " + std::to_string(prompt_blocks) +
                                  " KV blocks; the pool has " + std::to_string(cache_.num_blocks()));
  }
  if (job.params.max_tokens > 1) {
    if (!peers_.count(job.decode_node)) {
      return FailedPreconditionError(who + "decode node '" + job.decode_node + "' is not connected");
    }
    if (static_cast<int32_t>(job.decode_block_ids.size()) < prompt_blocks) {
      return InvalidArgumentError(who + std::to_string(job.decode_block_ids.size()) +
                                  " decode blocks reserved; the prompt needs " + std::to_string(prompt_blocks));
    }
  }
  auto same = [&](const auto& a) { return a->job.id == job.id; };
  if (std::any_of(queue_.begin(), queue_.end(), same) ||
      std::any_of(transferring_.begin(), transferring_.end(), same)) {
    return AlreadyExistsError(who + "already queued");
  }
  if (job.arrival_us == 0) job.arrival_us = NowMicros();
  auto a = std::make_unique<Active>();
  a->job = std::move(job);
  a->key = next_key_++;
  queue_.push_back(std::move(a));
  return Status::Ok();
}

void PrefillEngine::FreeBlocks(Active& a) {
  if (a.blocks.empty()) return;
  Status s = cache_.pool().Free(a.blocks);
  if (!s.ok()) GetLogger("prefill")->error("request {}: freeing blocks: {}", a.job.id, s.ToString());
  a.blocks.clear();
}

PrefillEvent PrefillEngine::MakeEvent(const Active& a, PrefillEventKind kind) const {
  PrefillEvent e;
  e.kind = kind;
  e.request_id = a.job.id;
  e.decode_node = a.job.decode_node;
  e.token = a.first_token;
  e.num_prompt_tokens = static_cast<uint32_t>(a.job.prompt.size());
  e.arrival_us = a.job.arrival_us;
  e.prefill_start_us = a.prefill_start_us;
  e.first_token_us = a.first_token_us;
  return e;
}

void PrefillEngine::Handle(Active& a, SessionAction action, std::vector<PrefillEvent>* events) {
  const auto now = SessionClock::now();
  if (action == SessionAction::kSendKvReady) {
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kKvReady);
    e.bytes = a.session->ready_notice().bytes;
    e.transfer_us = std::chrono::duration_cast<std::chrono::microseconds>(now - a.transfer_start).count();
    events->push_back(std::move(e));
    a.session->MarkNotified(now);
  } else if (action == SessionAction::kSendAbort) {
    events->push_back(MakeEvent(a, PrefillEventKind::kAbortDecode));
    if (!a.aborted_locally) {
      PrefillEvent e = MakeEvent(a, PrefillEventKind::kError);
      e.error = a.session->status().ok() ? AbortedError("transfer aborted") : a.session->status();
      events->push_back(std::move(e));
    }
  }
}

void PrefillEngine::Abort(const std::string& id, std::vector<PrefillEvent>* events) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->job.id != id) continue;
    FreeBlocks(**it);
    // Nothing was written to the decode node yet; the Abort lets it release the reservation
    // even if the router's own Abort to it got lost.
    if ((*it)->job.params.max_tokens > 1) events->push_back(MakeEvent(**it, PrefillEventKind::kAbortDecode));
    queue_.erase(it);
    return;
  }
  for (auto& a : transferring_) {
    if (a->job.id != id || !a->session || IsTerminal(a->session->state())) continue;
    a->aborted_locally = true;
    Handle(*a, a->session->Abort(AbortedError("aborted by the router"), SessionClock::now()), events);
    return;
  }
}

Status PrefillEngine::Step(std::vector<PrefillEvent>* events) {
  int32_t budget = options_.max_num_batched_tokens;
  std::vector<Active*> batch;
  std::vector<SequenceChunk> chunks;
  const int64_t now_us = NowMicros();
  for (auto& a : queue_) {
    if (budget <= 0) break;
    if (a->blocks.empty()) {
      const int32_t need = BlocksForTokens(static_cast<int64_t>(a->job.prompt.size()), cache_.block_size());
      if (!cache_.pool().CanAllocate(need)) break;  // FCFS: nobody overtakes the head
      ASSIGN_OR_RETURN(a->blocks, cache_.pool().Allocate(need));
      a->prefill_start_us = now_us;
    }
    const int32_t remaining = static_cast<int32_t>(a->job.prompt.size()) - a->num_computed;
    const int32_t take = std::min(remaining, budget);
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(a->job.prompt).subspan(a->num_computed, take);
    c.start_position = a->num_computed;
    c.block_table = a->blocks;
    c.want_logits = take == remaining;
    batch.push_back(a.get());
    chunks.push_back(c);
    budget -= take;
  }
  if (batch.empty()) return Status::Ok();

  // Sessions for the prompts this step completes: their layers are posted as they finish.
  const auto t0 = SessionClock::now();
  std::vector<Active*> sending;
  for (size_t i = 0; i < batch.size(); ++i) {
    Active& a = *batch[i];
    if (!chunks[i].want_logits || a.job.params.max_tokens <= 1) continue;
    auto peer = peers_.find(a.job.decode_node);
    if (peer == peers_.end()) continue;  // lost since Add: the first token still goes out, then an error
    std::vector<int> src(a.blocks.begin(), a.blocks.end());
    Active* ap = &a;
    a.session = std::make_unique<KvSendSession>(
        a.key, transport_, layout_, std::move(src),
        [ap](std::span<const int>) { ap->session_released = true; }, t0, options_.session);
    KvReservation r;
    r.request_id = a.key;
    r.layout_hash = layout_.compatibility_hash();
    r.pool_num_blocks = peer->second.pool_num_blocks;
    r.block_ids.assign(a.job.decode_block_ids.begin(), a.job.decode_block_ids.begin() + a.blocks.size());
    a.transfer_start = t0;
    Handle(a, a.session->OnReservation(r, peer->second.peer, t0), events);
    sending.push_back(&a);
  }

  ASSIGN_OR_RETURN(BatchPlan plan, BuildBatchPlan(chunks, cache_.block_size()));
  RETURN_IF_ERROR(transformer_.Forward(plan, cache_, &logits_, [&](int layer) {
    const auto now = SessionClock::now();
    for (Active* a : sending) Handle(*a, a->session->OnLayerComputed(layer, now), events);
  }));

  const int64_t vocab = transformer_.config().vocab_size;
  const int64_t t_done = NowMicros();
  for (size_t s = 0; s < batch.size(); ++s) batch[s]->num_computed += static_cast<int32_t>(chunks[s].tokens.size());
  // Rows are independent (each draw depends on its own seed, step 0): sample them in parallel,
  // then emit in order.
  const int32_t num_rows = plan.num_logits();
  const int threads = std::max(1, std::min(transformer_.backend().host_threads(), num_rows));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int32_t i = 0; i < num_rows; ++i) {
    Active& a = *batch[plan.logits_seq[i]];
    TokenHistory history;
    history.AddPrompt(a.job.prompt);
    std::span<float> row(logits_.data() + static_cast<size_t>(i) * vocab, static_cast<size_t>(vocab));
    a.first_token = SampleToken(row, a.job.params, history, 0);
  }
  for (int32_t i = 0; i < num_rows; ++i) {
    Active& a = *batch[plan.logits_seq[i]];
    a.first_token_us = t_done;
    PrefillEvent e = MakeEvent(a, PrefillEventKind::kFirstToken);
    if (IsStopToken(a.job.params, a.first_token)) {
      e.finished = true;
      e.finish_reason = FinishReason::kStop;
    } else if (a.job.params.max_tokens <= 1) {
      e.finished = true;
      e.finish_reason = FinishReason::kLength;
    }
    events->push_back(e);
    if (e.finished) {
      a.aborted_locally = true;
      if (a.session) {
        Handle(a, a.session->Abort(AbortedError("finished at the first token"), SessionClock::now()), events);
      } else {
        events->push_back(MakeEvent(a, PrefillEventKind::kAbortDecode));
      }
    } else if (!a.session) {
      PrefillEvent err = MakeEvent(a, PrefillEventKind::kError);
      err.error = UnavailableError("decode node " + a.job.decode_node + " went down before the transfer");
      events->push_back(std::move(err));
    }
  }
  // Completed prompts leave the queue; those with a live session wait for it in transferring_.
  for (auto it = queue_.begin(); it != queue_.end();) {
    Active& a = **it;
    if (a.num_computed < static_cast<int32_t>(a.job.prompt.size())) {
      ++it;
      continue;
    }
    transferring_.push_back(std::move(*it));
    it = queue_.erase(it);
  }
  Poll(events);
  return Status::Ok();
}

void PrefillEngine::Poll(std::vector<PrefillEvent>* events) {
  const auto now = SessionClock::now();
  for (auto it = transferring_.begin(); it != transferring_.end();) {
    Active& a = **it;
    if (a.session && !IsTerminal(a.session->state())) Handle(a, a.session->Poll(now), events);
    if (a.session && !IsTerminal(a.session->state())) {
      ++it;
      continue;
    }
    FreeBlocks(a);
    it = transferring_.erase(it);
  }
}

}  // namespace tandem
