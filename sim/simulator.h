// A discrete-event simulator of a Tandem deployment on a virtual clock (`tandem simulate`, the
// capacity planner). It runs the real decision code, unchanged: the RouterCore with the real
// placement policy, admission and queue; one engine Scheduler per node in its real role
// (prefill, decode, colocated) with its real budgets, queue order, KV block accounting, growth
// and preemption. What it does not run is the model: every engine step takes the time the
// latency model (slo/latency_model.h) predicts for its shape, and a KV transfer the profile's
// transfer time, overlapped layer by layer with the prefill step that produced it.
//
// The nodes behave as the real ones do, in the order they do it: a node applies what reached
// it between steps; a prefill node reserves the decode node's KV when a prompt completes (the
// decode node's reservation rule: its prompt's blocks, or prompt + max_tokens when it reserves
// up front, refused when they are not free or a preempted request waits for them), sends the
// first token to the router with it, streams the KV and frees its own blocks when the last byte
// landed; the decode node admits the request then. Nodes report their load every
// `report_interval_us`, as they do over RPC. Messages take no time.
//
// Deterministic: the same options, policy and requests give the same records.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/scheduler.h"
#include "scheduler/placement_policy.h"
#include "scheduler/router_core.h"
#include "slo/latency_model.h"
#include "slo/request_record.h"
#include "slo/slo_config.h"

namespace tandem {

struct SimRequest {
  int64_t arrival_us = 0;  // virtual time it reaches the router
  int32_t prompt_len = 0;
  int32_t output_len = 0;  // max_tokens; the answer runs to it (ignore_eos, as tandem bench sends)
  RequestSlo slo;
};

struct SimOptions {
  LatencyProfile profile;  // every node's step times, and the KV transfer
  // The decode nodes' step times when they differ (another instance size); unset: `profile`.
  std::optional<LatencyProfile> decode_profile;
  // A step's prefill part takes prefill_scale times the profile's prediction, its decode part
  // decode_scale times: what a profile measured on an idle machine does not see on a loaded one
  // (the server's own threads and the clients beside it slow short memory-bound decode steps more
  // than long prefills), measured as a deployment's step time / the profile's.
  double prefill_scale = 1.0;
  double decode_scale = 1.0;
  int num_prefill = 1;
  int num_decode = 1;
  int num_colocated = 0;  // > 0: that many colocated workers instead of prefill and decode nodes
  // > 1: the prefill and decode nodes form this many equal groups, each a machine holding some of
  // both (DistServe's low node affinity): a prefill node reaches only its own group's decode
  // nodes, whose KV link the profile's transfer describes. num_prefill and num_decode must be
  // multiples of it.
  int node_groups = 1;
  int32_t kv_blocks = 0;    // per node; 0: from kv_cache_gib and the profile's KV bytes per token
  double kv_cache_gib = 0;  // 0: the node's profile's kv_cache_gib when it has one, else 1 GiB
  int32_t block_size = 16;
  int32_t prefill_max_num_batched_tokens = 2048;  // the prefill node's default
  QueueOrder prefill_queue = QueueOrder::kDeadline;
  int32_t decode_max_num_seqs = 64;  // the decode node's defaults
  int32_t decode_max_num_batched_tokens = 512;
  int32_t colocated_max_num_seqs = 64;  // the worker's defaults
  int32_t colocated_max_num_batched_tokens = 2048;
  KvAllocation kv_allocation = KvAllocation::kGrow;
  // Decode nodes admit a prefilled request only while the profile's step time keeps every
  // member's TPOT target (they do when given --latency-profile).
  bool decode_tpot_admission = true;
  RouterCoreOptions router;
  // Deliver to the router core only a request's first and last tokens (the last with the count
  // of those between): its records' first and last stamps and counts, hence TTFT and TPOT, stay
  // exact, and a planner's millions of middle tokens cost nothing there. Needs
  // router.token_times false and no inter-token timeout; a policy that reads the router's
  // per-token decode context (the SLO policy) sees it grow only at the end, so the planner,
  // which uses least-loaded, is its user.
  bool coalesce_tokens = false;
  int64_t report_interval_us = 100'000;
  int32_t vocab_size = 32000;
};

struct SimResult {
  std::vector<RequestRecord> records;  // one per request, in request order
  std::vector<Status> refused;         // per request: why Submit refused it (Ok when accepted)
  int64_t steps = 0;                   // engine steps simulated, all nodes
  int64_t events = 0;
  int64_t end_us = 0;  // virtual time the last request finished
};

// InvalidArgument for options or requests that make no sense (no nodes, a profile without the
// phases the deployment needs, a request longer than a node's pool); Internal if the simulation
// stalls with requests unfinished (a bug).
Result<SimResult> Simulate(const SimOptions& options, std::unique_ptr<PlacementPolicy> policy,
                           const std::vector<SimRequest>& requests);

}  // namespace tandem
