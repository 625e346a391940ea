#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <unordered_map>

#include "model/block_pool.h"
#include "model/kv_blocks.h"

namespace tandem {
namespace {

constexpr int32_t kToken = 7;  // every prompt and sampled token: no model runs, and ignore_eos

enum class EventKind { kArrival, kStepDone, kTransferDone, kReport };

struct Event {
  int64_t at = 0;
  int64_t seq = 0;  // ties in time keep the order they were made in: deterministic
  EventKind kind = EventKind::kArrival;
  int32_t node = -1;
  int64_t id = 0;
};

struct Later {
  bool operator()(const Event& a, const Event& b) const { return a.at != b.at ? a.at > b.at : a.seq > b.seq; }
};

struct SimNode {
  std::string id;
  NodeRole role = NodeRole::kDecode;
  int group = 0;  // SimOptions::node_groups: prefill nodes reach their group's decode nodes
  std::unique_ptr<BlockPool> pool;
  std::unique_ptr<Scheduler> sched;
  bool busy = false;
  // The step in flight, and buffers reused step after step (no allocation per step).
  StepPlan plan;
  StepResult result;
  std::vector<StepOutput> outputs;
  int64_t step_start_us = 0;
  int64_t busy_us = 0;  // since the last report
  // What reached the node during a step; applied before the next one (as NodeLoop does).
  std::vector<Request> to_add;
  std::vector<Request> to_add_prefilled;
  std::vector<int64_t> to_abort;
  std::unordered_map<int64_t, std::vector<int32_t>> reserved;  // decode: KV on its way
  int32_t sending = 0;                                         // prefill: transfers in flight
};

// A prefill node's KV on its way to a decode node.
struct Transfer {
  NodeIndex prefill = -1;
  NodeIndex decode = -1;
  std::vector<int32_t> prefill_blocks;  // held until the last byte landed
  Request request;                      // what the decode node admits
  TransferReport report;
  bool aborted = false;
};

class Simulation {
 public:
  Simulation(const SimOptions& o, std::unique_ptr<PlacementPolicy> policy, const std::vector<SimRequest>& requests)
      : o_(o), requests_(requests) {
    std::vector<NodeSpec> specs;
    if (o.num_colocated > 0) {
      for (int i = 0; i < o.num_colocated; ++i) specs.push_back({"worker-" + std::to_string(i), NodeRole::kColocated});
    } else {
      for (int i = 0; i < o.num_prefill; ++i) specs.push_back({"prefill-" + std::to_string(i), NodeRole::kPrefill});
      for (int i = 0; i < o.num_decode; ++i) specs.push_back({"decode-" + std::to_string(i), NodeRole::kDecode});
    }
    const int groups = std::max(1, o.node_groups);
    int prefill_i = 0, decode_i = 0;
    for (const NodeSpec& s : specs) {
      auto n = std::make_unique<SimNode>();
      n->id = s.id;
      n->role = s.role;
      if (s.role == NodeRole::kPrefill) n->group = prefill_i++ * groups / std::max(1, o.num_prefill);
      if (s.role == NodeRole::kDecode) n->group = decode_i++ * groups / std::max(1, o.num_decode);
      nodes_.push_back(std::move(n));
    }
    RouterCoreOptions ro = o.router;
    ro.token_events = false;  // the records are all the simulation reads
    core_ = std::make_unique<RouterCore>(std::move(specs), std::move(policy), ro);
  }

  Result<SimResult> Run();

 private:
  void Push(int64_t at, EventKind kind, int32_t node, int64_t id) { queue_.push({at, seq_++, kind, node, id}); }
  Status BuildNodes();
  void Execute(RouterActions& actions);
  void ApplyInbox(NodeIndex n);
  void TryStart(NodeIndex n);
  void OnStepDone(NodeIndex n);
  void OnColocatedOutputs(NodeIndex n, const std::vector<StepOutput>& outputs, RouterActions* out);
  void OnPrefillDone(NodeIndex n, RouterActions* out);
  void OnDecodeOutputs(NodeIndex n, const std::vector<StepOutput>& outputs, RouterActions* out);
  void OnTransferDone(int64_t id);
  Status Reserve(NodeIndex d, const Request& r);
  void Report(NodeIndex n, RouterActions* out);
  double StepUs(const SimNode& node, const StepPlan& plan) const;
  const LatencyProfile& ProfileOf(const SimNode& node) const {
    return node.role == NodeRole::kDecode && o_.decode_profile ? *o_.decode_profile : o_.profile;
  }
  void FreeBlocks(NodeIndex n, std::vector<int32_t>& blocks);

  const SimOptions& o_;
  const std::vector<SimRequest>& requests_;
  std::unique_ptr<RouterCore> core_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  int64_t seq_ = 0;
  int64_t now_ = 0;
  std::unordered_map<int64_t, NodeIndex> decode_of_;  // placed requests: their decode node
  std::unordered_map<int64_t, Transfer> transfers_;
  SimResult result_;
  TokensReport tokens_report_;
  std::vector<bool> done_;
  size_t num_done_ = 0;
};

Status Simulation::BuildNodes() {
  int64_t context = 1;
  for (const SimRequest& r : requests_) context = std::max<int64_t>(context, r.prompt_len + r.output_len);
  for (auto& n : nodes_) {
    // The pool: kv_blocks, else kv_cache_gib, else what the node's profile says one instance
    // holds (a synthetic profile knows its device memory), else 1 GiB.
    int32_t blocks = o_.kv_blocks;
    if (blocks <= 0) {
      const LatencyProfile& profile = ProfileOf(*n);
      const double per_block = static_cast<double>(profile.kv_bytes_per_token) * o_.block_size;
      if (per_block <= 0)
        return InvalidArgumentError("the profile does not say its KV bytes per token: give kv_blocks");
      const double gib = o_.kv_cache_gib > 0 ? o_.kv_cache_gib : profile.kv_cache_gib > 0 ? profile.kv_cache_gib : 1.0;
      blocks = static_cast<int32_t>(std::min(gib * (1ull << 30) / per_block, 1e9));
    }
    if (blocks <= 0) return InvalidArgumentError("a node's KV pool holds no block");
    RequestLimits limits;
    limits.vocab_size = o_.vocab_size;
    limits.context_window = context;
    limits.block_size = o_.block_size;
    limits.pool_blocks = blocks;
    SchedulerOptions so;
    so.role = n->role == NodeRole::kPrefill  ? EngineRole::kPrefill
              : n->role == NodeRole::kDecode ? EngineRole::kDecode
                                             : EngineRole::kColocated;
    so.kv_allocation = o_.kv_allocation;
    if (n->role == NodeRole::kPrefill) {
      so.max_num_seqs = 1 << 20;  // as the prefill node: the token budget bounds a step
      so.max_num_batched_tokens = o_.prefill_max_num_batched_tokens;
      so.queue_order = o_.prefill_queue;
    } else if (n->role == NodeRole::kDecode) {
      so.max_num_seqs = o_.decode_max_num_seqs;
      so.max_num_batched_tokens = std::max(o_.decode_max_num_seqs, o_.decode_max_num_batched_tokens);
      if (o_.decode_tpot_admission) {
        const LatencyProfile* p = &ProfileOf(*n);
        const double scale = o_.decode_scale;
        so.step_time_us = [p, scale](int32_t batch, int64_t ctx) { return p->DecodeStepUs(batch, ctx) * scale; };
      }
    } else {
      so.max_num_seqs = o_.colocated_max_num_seqs;
      so.max_num_batched_tokens = o_.colocated_max_num_batched_tokens;
    }
    // The records that come out are the router core's; the nodes' own need no per-token stamps.
    so.token_times = false;
    n->pool = std::make_unique<BlockPool>(blocks);
    n->sched = std::make_unique<Scheduler>(*n->pool, o_.block_size, limits, std::vector<int64_t>{}, so);
  }
  return Status::Ok();
}

double Simulation::StepUs(const SimNode& node, const StepPlan& plan) const {
  const LatencyProfile& profile = ProfileOf(node);
  const StepShape shape = ShapeOf(plan);
  double us = 0;
  if (shape.prefill.tokens > 0) us += profile.PrefillUs(shape.prefill) * o_.prefill_scale;
  if (shape.decode_batch > 0) us += profile.DecodeStepUs(shape.decode_batch, shape.decode_context) * o_.decode_scale;
  return std::max(us, 1.0);
}

void Simulation::FreeBlocks(NodeIndex n, std::vector<int32_t>& blocks) {
  if (!blocks.empty()) (void)nodes_[static_cast<size_t>(n)]->pool->Free(blocks);
  blocks.clear();
}

void Simulation::Execute(RouterActions& actions) {
  // Actions may produce more (a node's answer is immediate only through later events), so a
  // plain loop over a snapshot suffices.
  for (RouterAction& a : actions) {
    if (auto* send = std::get_if<SendPrefill>(&a)) {
      Request r;
      r.id = send->request->id;
      r.prompt = send->request->prompt;
      r.params = send->request->params;
      r.record.arrival_us = send->request->arrival_us;
      r.record.slo = send->request->slo;
      decode_of_[r.id] = send->decode;
      nodes_[static_cast<size_t>(send->prefill)]->to_add.push_back(std::move(r));
      TryStart(send->prefill);
    } else if (auto* abort = std::get_if<SendAbort>(&a)) {
      nodes_[static_cast<size_t>(abort->node)]->to_abort.push_back(abort->request_id);
      auto t = transfers_.find(abort->request_id);
      if (t != transfers_.end()) t->second.aborted = true;
      TryStart(abort->node);
    } else if (auto* deliver = std::get_if<DeliverEvent>(&a)) {
      if (!deliver->event.final()) continue;
      const size_t i = static_cast<size_t>(deliver->event.request_id - 1);
      if (i < done_.size() && !done_[i]) {
        result_.records[i] = std::move(deliver->event.record);
        done_[i] = true;
        ++num_done_;
        result_.end_us = std::max(result_.end_us, now_);
      }
    }
    // SendClusterView: every prefill node reaches every decode node here.
  }
  actions.clear();
}

void Simulation::ApplyInbox(NodeIndex n) {
  SimNode& node = *nodes_[static_cast<size_t>(n)];
  RouterActions out;
  for (int64_t id : node.to_abort) {
    if (node.sched->Find(id) != nullptr && node.sched->Abort(id, now_).ok()) node.sched->TakeFinished(id);
    auto r = node.reserved.find(id);
    if (r != node.reserved.end() && !transfers_.count(id)) {  // no write in flight: free now
      FreeBlocks(n, r->second);
      node.reserved.erase(r);
    }
  }
  node.to_abort.clear();
  for (Request& r : node.to_add) {
    const int64_t id = r.id;
    const Status s = node.sched->Add(std::move(r), now_);
    if (!s.ok()) core_->OnNodeError(n, id, s, now_, &out);
  }
  node.to_add.clear();
  for (Request& r : node.to_add_prefilled) {
    const int64_t id = r.id;
    std::vector<int32_t> blocks = r.block_table;
    const Status s = node.sched->AddPrefilled(std::move(r), now_);
    if (!s.ok()) {
      FreeBlocks(n, blocks);
      core_->OnNodeError(n, id, s, now_, &out);
    }
  }
  node.to_add_prefilled.clear();
  Execute(out);
}

void Simulation::TryStart(NodeIndex n) {
  SimNode& node = *nodes_[static_cast<size_t>(n)];
  if (node.busy) return;
  ApplyInbox(n);
  if (!node.sched->HasWork()) return;
  node.sched->Schedule(now_, &node.plan);
  if (node.plan.empty()) return;  // waiting for blocks: a later event frees them
  node.busy = true;
  node.step_start_us = now_;
  Push(now_ + static_cast<int64_t>(std::llround(StepUs(node, node.plan))), EventKind::kStepDone, n, 0);
}

void Simulation::OnStepDone(NodeIndex n) {
  SimNode& node = *nodes_[static_cast<size_t>(n)];
  node.busy = false;
  node.busy_us += now_ - node.step_start_us;
  ++result_.steps;
  node.result.tokens.clear();
  for (const ScheduledChunk& c : node.plan.chunks) {
    if (c.want_logits) node.result.tokens.push_back(kToken);
  }
  node.sched->Postprocess(now_, node.plan, node.result, &node.outputs);
  node.plan.chunks.clear();  // its requests may be gone
  const std::vector<StepOutput>& outputs = node.outputs;
  RouterActions out;
  switch (node.role) {
    case NodeRole::kColocated:
      OnColocatedOutputs(n, outputs, &out);
      break;
    case NodeRole::kPrefill:
      OnPrefillDone(n, &out);
      break;
    case NodeRole::kDecode:
      OnDecodeOutputs(n, outputs, &out);
      break;
  }
  Execute(out);
  TryStart(n);
}

void Simulation::OnColocatedOutputs(NodeIndex n, const std::vector<StepOutput>& outputs, RouterActions* out) {
  Scheduler& sched = *nodes_[static_cast<size_t>(n)]->sched;
  for (const StepOutput& o : outputs) {
    if (o.finish_reason == FinishReason::kError) {
      sched.TakeFinished(o.request_id);
      core_->OnNodeError(n, o.request_id, o.status, now_, out);
      continue;
    }
    if (o.token < 0) continue;
    const bool finished = o.finish_reason != FinishReason::kNone;
    if (o_.coalesce_tokens && !finished && !o.first_token) continue;
    // Only a first or a last token needs the request itself (its stamps); the rest are counted.
    std::unique_ptr<Request> done = finished ? sched.TakeFinished(o.request_id) : nullptr;
    const Request* r = done ? done.get() : o.first_token ? sched.Find(o.request_id) : nullptr;
    if (o.first_token) {
      if (r == nullptr) continue;
      FirstTokenReport report{o.token, finished, o.finish_reason, r->record.prefill_start_us, r->record.prefill_end_us};
      core_->OnFirstToken(n, o.request_id, report, now_, out);
    } else {
      TokensReport& report = tokens_report_;  // reused: one token per request per step
      // Coalesced: the tokens since the first (r is the finished request here).
      report.tokens.assign(o_.coalesce_tokens && r != nullptr ? r->output.size() - 1 : 1, o.token);
      report.finished = finished;
      report.finish_reason = o.finish_reason;
      report.preemptions = r != nullptr ? r->record.preemptions : 0;
      core_->OnTokens(n, o.request_id, report, now_, out);
    }
  }
}

Status Simulation::Reserve(NodeIndex d, const Request& r) {
  SimNode& node = *nodes_[static_cast<size_t>(d)];
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  const int32_t need = o_.kv_allocation == KvAllocation::kGrow
                           ? BlocksForTokens(prompt, o_.block_size)
                           : KvBlocksForRequest(prompt, r.params.max_tokens, o_.block_size);
  if (!node.pool->CanAllocate(need)) return ResourceExhaustedError(std::to_string(need) + " KV blocks are not free");
  const int32_t resuming = node.sched->blocks_for_waiting_head();
  if (resuming > 0 && !node.pool->CanAllocate(need + resuming)) {
    return ResourceExhaustedError("the free KV blocks are kept for a preempted request");
  }
  ASSIGN_OR_RETURN(node.reserved[r.id], node.pool->Allocate(need));
  return Status::Ok();
}

void Simulation::OnPrefillDone(NodeIndex p, RouterActions* out) {
  SimNode& node = *nodes_[static_cast<size_t>(p)];
  for (std::unique_ptr<Request>& r : node.sched->TakeHandedOff()) {
    const int64_t id = r->id;
    if (r->finish_reason == FinishReason::kError) {
      FreeBlocks(p, r->block_table);
      core_->OnNodeError(p, id, r->status, now_, out);
      continue;
    }
    const int32_t first = r->output.empty() ? -1 : r->output.front();
    FirstTokenReport report{first, r->finished(), r->finish_reason, r->record.prefill_start_us,
                            r->record.prefill_end_us};
    if (r->finished()) {  // nothing left for a decode node
      FreeBlocks(p, r->block_table);
      core_->OnFirstToken(p, id, report, now_, out);
      continue;
    }
    auto placed = decode_of_.find(id);
    if (placed == decode_of_.end()) {  // cannot happen: every prompt came with its decode node
      FreeBlocks(p, r->block_table);
      core_->OnNodeError(p, id, InternalError("no decode node for the request"), now_, out);
      continue;
    }
    const NodeIndex d = placed->second;
    const Status reserved = Reserve(d, *r);
    if (!reserved.ok()) {
      FreeBlocks(p, r->block_table);
      core_->OnReservationRefused(p, id, nodes_[static_cast<size_t>(d)]->id, reserved.message(), now_, out);
      continue;
    }
    // The KV moves layer by layer, each layer once the last step computed it, one at a time.
    const int32_t layers = std::max(1, o_.profile.num_layers);
    const int64_t tokens =
        static_cast<int64_t>(BlocksForTokens(static_cast<int64_t>(r->prompt.size()), o_.block_size)) * o_.block_size;
    const double per_layer = o_.profile.TransferUs(tokens) / layers;
    const double step = static_cast<double>(now_ - node.step_start_us);
    double t = static_cast<double>(node.step_start_us);
    for (int32_t l = 0; l < layers; ++l) {
      t = std::max(t, node.step_start_us + step * (l + 1) / layers) + per_layer;
    }
    Transfer tr;
    tr.prefill = p;
    tr.decode = d;
    tr.prefill_blocks = std::move(r->block_table);
    tr.report.bytes = tokens * o_.profile.kv_bytes_per_token;
    tr.report.start_us = node.step_start_us + static_cast<int64_t>(step / layers);
    tr.report.end_us = std::max(now_, static_cast<int64_t>(std::llround(t)));
    tr.request.id = id;
    tr.request.prompt = std::move(r->prompt);
    tr.request.params = r->params;
    tr.request.output = {first};
    tr.request.record.arrival_us = r->record.arrival_us;
    tr.request.record.slo = r->record.slo;
    tr.request.record.kv_bytes = tr.report.bytes;
    tr.request.record.transfer_start_us = tr.report.start_us;
    tr.request.record.transfer_end_us = tr.report.end_us;
    ++node.sending;
    Push(tr.report.end_us, EventKind::kTransferDone, d, id);
    transfers_[id] = std::move(tr);
    core_->OnFirstToken(p, id, report, now_, out);
  }
}

void Simulation::OnTransferDone(int64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  Transfer tr = std::move(it->second);
  transfers_.erase(it);
  SimNode& prefill = *nodes_[static_cast<size_t>(tr.prefill)];
  SimNode& decode = *nodes_[static_cast<size_t>(tr.decode)];
  --prefill.sending;
  FreeBlocks(tr.prefill, tr.prefill_blocks);
  auto r = decode.reserved.find(id);
  RouterActions out;
  if (r != decode.reserved.end()) {
    if (tr.aborted) {
      FreeBlocks(tr.decode, r->second);
    } else {
      tr.request.block_table = std::move(r->second);
      decode.to_add_prefilled.push_back(std::move(tr.request));
      core_->OnKvReady(tr.prefill, id, tr.report);
    }
    decode.reserved.erase(r);
  }
  Execute(out);
  TryStart(tr.decode);
  TryStart(tr.prefill);  // its freed blocks may admit a waiting prompt
}

void Simulation::OnDecodeOutputs(NodeIndex d, const std::vector<StepOutput>& outputs, RouterActions* out) {
  Scheduler& sched = *nodes_[static_cast<size_t>(d)]->sched;
  for (const StepOutput& o : outputs) {
    if (o.finish_reason == FinishReason::kError) {
      sched.TakeFinished(o.request_id);
      core_->OnNodeError(d, o.request_id, o.status, now_, out);
      continue;
    }
    if (o.token < 0) continue;
    const bool finished = o.finish_reason != FinishReason::kNone;
    if (o_.coalesce_tokens && !finished) continue;
    TokensReport& report = tokens_report_;  // reused: one token per request per step
    report.tokens.assign(1, o.token);
    report.finished = finished;
    report.finish_reason = o.finish_reason;
    report.decode_admitted_us = 0;
    report.preemptions = 0;
    if (report.finished) {  // the stamps the router keeps come with the last token
      std::unique_ptr<Request> done = sched.TakeFinished(o.request_id);
      if (done) {
        report.decode_admitted_us = done->record.decode_admitted_us;
        report.preemptions = done->record.preemptions;
        // Coalesced: every token after the first (the prefill node's), the last included.
        if (o_.coalesce_tokens) report.tokens.assign(std::max<size_t>(1, done->output.size() - 1), o.token);
      }
    }
    core_->OnTokens(d, o.request_id, report, now_, out);
  }
}

void Simulation::Report(NodeIndex n, RouterActions* out) {
  SimNode& node = *nodes_[static_cast<size_t>(n)];
  NodeLoadReport r;
  switch (node.role) {
    case NodeRole::kPrefill:
      r.queued_requests = static_cast<uint32_t>(node.sched->num_running() + node.sched->num_waiting());
      r.queued_tokens = static_cast<uint64_t>(node.sched->pending_prompt_tokens());
      r.running_requests = static_cast<uint32_t>(node.sending);
      for (const auto& d : nodes_) {
        if (d->role == NodeRole::kDecode && d->group == node.group) r.connected_decode_nodes.push_back(d->id);
      }
      break;
    case NodeRole::kDecode:
      r.queued_requests = static_cast<uint32_t>(node.reserved.size());
      r.running_requests = static_cast<uint32_t>(node.sched->num_running() + node.sched->num_waiting());
      break;
    case NodeRole::kColocated:
      r.queued_requests = static_cast<uint32_t>(node.sched->num_waiting());
      r.queued_tokens = static_cast<uint64_t>(node.sched->pending_prompt_tokens());
      r.running_requests = static_cast<uint32_t>(node.sched->num_running());
      break;
  }
  r.free_blocks = static_cast<uint32_t>(node.pool->num_free());
  r.total_blocks = static_cast<uint32_t>(node.pool->num_blocks());
  r.busy_fraction = std::min(1.0f, static_cast<float>(node.busy_us) / static_cast<float>(o_.report_interval_us));
  node.busy_us = 0;
  core_->OnLoadReport(n, std::move(r), now_, out);
}

Result<SimResult> Simulation::Run() {
  if (nodes_.empty()) return InvalidArgumentError("no nodes to simulate");
  if (o_.num_colocated == 0 && (o_.num_prefill < 1 || o_.num_decode < 1)) {
    return InvalidArgumentError("a disaggregated deployment needs at least one prefill and one decode node");
  }
  if (o_.profile.prefill.empty() || o_.profile.decode.empty() ||
      (o_.decode_profile && o_.decode_profile->decode.empty())) {
    return InvalidArgumentError("the latency profile has no prefill or no decode model");
  }
  if (o_.report_interval_us <= 0) return InvalidArgumentError("the report interval must be positive");
  if (o_.node_groups < 1 ||
      (o_.num_colocated == 0 && (o_.num_prefill % o_.node_groups != 0 || o_.num_decode % o_.node_groups != 0))) {
    return InvalidArgumentError("node groups (" + std::to_string(o_.node_groups) +
                                ") must divide the prefill and decode node counts");
  }
  if (o_.coalesce_tokens && (o_.router.token_times || o_.router.inter_token_timeout_us > 0)) {
    return InvalidArgumentError("coalesced tokens need records without token times and no inter-token timeout");
  }
  if (!(o_.prefill_scale > 0) || !(o_.decode_scale > 0)) return InvalidArgumentError("step scales must be positive");
  RETURN_IF_ERROR(BuildNodes());
  result_.records.resize(requests_.size());
  result_.refused.resize(requests_.size());
  done_.assign(requests_.size(), false);
  RouterActions out;
  for (NodeIndex n = 0; n < static_cast<NodeIndex>(nodes_.size()); ++n) {
    const bool owns_pool = nodes_[static_cast<size_t>(n)]->role != NodeRole::kPrefill;
    core_->OnNodeConnected(n, owns_pool ? static_cast<uint32_t>(o_.block_size) : 0, 0, &out,
                           owns_pool && o_.kv_allocation == KvAllocation::kReserve);
    Report(n, &out);
  }
  Execute(out);
  for (size_t i = 0; i < requests_.size(); ++i) {
    const SimRequest& q = requests_[i];
    if (q.prompt_len < 1 || q.output_len < 1) {
      return InvalidArgumentError("request " + std::to_string(i) + " has a prompt of " + std::to_string(q.prompt_len) +
                                  " and an output of " + std::to_string(q.output_len) + " tokens");
    }
    Push(q.arrival_us, EventKind::kArrival, -1, static_cast<int64_t>(i));
  }
  Push(o_.report_interval_us, EventKind::kReport, -1, 0);
  while (num_done_ < requests_.size()) {
    if (queue_.empty()) return InternalError("the simulation stalled with requests unfinished");
    const Event e = queue_.top();
    queue_.pop();
    now_ = e.at;
    ++result_.events;
    switch (e.kind) {
      case EventKind::kArrival: {
        const SimRequest& q = requests_[static_cast<size_t>(e.id)];
        auto r = std::make_shared<ServingRequest>();
        r->id = e.id + 1;
        r->prompt.assign(static_cast<size_t>(q.prompt_len), kToken);
        r->params.max_tokens = q.output_len;
        r->params.ignore_eos = true;
        r->params.temperature = 0;
        r->arrival_us = now_;
        r->slo = q.slo;
        const Status s = core_->Submit(r, now_, &out);
        if (!s.ok()) {
          RequestRecord& rec = result_.records[static_cast<size_t>(e.id)];
          rec.id = r->id;
          rec.prompt_tokens = q.prompt_len;
          rec.max_tokens = q.output_len;
          rec.arrival_us = rec.finish_us = now_;
          rec.finish_reason = FinishReason::kError;
          rec.status = s;
          rec.slo = q.slo;
          result_.refused[static_cast<size_t>(e.id)] = s;
          done_[static_cast<size_t>(e.id)] = true;
          ++num_done_;
        }
        Execute(out);
        break;
      }
      case EventKind::kStepDone:
        OnStepDone(e.node);
        break;
      case EventKind::kTransferDone:
        OnTransferDone(e.id);
        break;
      case EventKind::kReport:
        for (NodeIndex n = 0; n < static_cast<NodeIndex>(nodes_.size()); ++n) Report(n, &out);
        core_->Tick(now_, &out);
        Execute(out);
        for (NodeIndex n = 0; n < static_cast<NodeIndex>(nodes_.size()); ++n) TryStart(n);
        if (num_done_ < requests_.size()) Push(now_ + o_.report_interval_us, EventKind::kReport, -1, 0);
        break;
    }
  }
  for (const auto& n : nodes_) {
    if (n->pool->num_free() != n->pool->num_blocks()) {
      return InternalError(n->id + " still holds " + std::to_string(n->pool->num_blocks() - n->pool->num_free()) +
                           " KV blocks after every request finished");
    }
  }
  return std::move(result_);
}

}  // namespace

Result<SimResult> Simulate(const SimOptions& options, std::unique_ptr<PlacementPolicy> policy,
                           const std::vector<SimRequest>& requests) {
  if (!policy) return InvalidArgumentError("no placement policy");
  Simulation sim(options, std::move(policy), requests);
  return sim.Run();
}

}  // namespace tandem
