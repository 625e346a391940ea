// Shared by the `tandem serve` fault suites (cluster_faults_test.cc, cluster_chaos_test.cc):
// request bodies, waiting on GET /v1/load, and starting a cluster whose pools are idle.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/frontend/serving_test_util.h"
#include "tests/scheduler/ucx/load_view.h"
#include "tests/scheduler/ucx/serve_process.h"

namespace tandem::testing {

// `len` ordinary token ids, different for each `salt`.
inline std::vector<int32_t> Prompt(int len, int salt) {
  std::vector<int32_t> ids;
  for (int j = 0; j < len; ++j) ids.push_back(300 + (salt * 7919 + j * 104729) % 20000);
  return ids;
}

// A /v1/completions body that generates exactly `max_tokens` (ignore_eos).
inline std::string CompletionBody(const std::vector<int32_t>& prompt, int max_tokens, bool stream, int seed) {
  return nlohmann::json{{"prompt", prompt}, {"max_tokens", max_tokens}, {"ignore_eos", true}, {"temperature", 0.8},
                        {"seed", seed},     {"stream", stream}}
      .dump();
}

// Polls GET /v1/load every 50 ms until `pred` holds or `deadline`; the last view in `last`.
inline bool WaitLoad(TestHttpClient& admin, const std::function<bool(const LoadView&)>& pred,
                     std::chrono::steady_clock::time_point deadline, LoadView* last) {
  while (true) {
    if (auto v = GetLoad(admin)) {
      *last = *v;
      if (pred(*v)) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

inline std::string Describe(const LoadView& v) {
  std::string s = "num_requests=" + std::to_string(v.num_requests);
  for (const auto& n : v.nodes) {
    s += " | " + n.id + " " + n.state + " free=" + std::to_string(n.free_kv_blocks) + "/" +
         std::to_string(n.total_kv_blocks) + " queued=" + std::to_string(n.queued_requests) +
         " running=" + std::to_string(n.running_requests);
  }
  return s;
}

// Every node ready and idle (free == total, as the nodes reported it) and nothing in flight.
inline bool Idle(const LoadView& v, const std::vector<std::string>& ids) {
  if (v.num_requests != 0) return false;
  for (const std::string& id : ids) {
    const NodeLoadView* n = v.Node(id);
    if (!n || n->state != "ready" || n->free_kv_blocks <= 0 || n->free_kv_blocks != n->total_kv_blocks) return false;
  }
  return true;
}

// Starts serve (UCX_TLS=`tls`, in `dir`) with `num_prefill` + `num_decode` nodes and waits
// (bounded) until every node reported an idle pool: their ids in `ids`, that view in `start`.
inline void StartIdleCluster(ServeProcess& serve, const std::string& model, const std::string& tls,
                             const std::string& dir, int num_prefill, int num_decode, std::vector<std::string>* ids,
                             LoadView* start, const std::vector<std::string>& extra = {}) {
  std::string error;
  ASSERT_TRUE(serve.Start(model, num_prefill, num_decode, tls, dir, &error, extra)) << error;
  for (int i = 0; i < num_prefill; ++i) ids->push_back("prefill-" + std::to_string(i));
  for (int i = 0; i < num_decode; ++i) ids->push_back("decode-" + std::to_string(i));
  TestHttpClient admin(serve.port(), std::chrono::seconds(10));
  ASSERT_TRUE(WaitLoad(
      admin, [&](const LoadView& v) { return Idle(v, *ids); },
      std::chrono::steady_clock::now() + std::chrono::seconds(30), start))
      << Describe(*start);
}

}  // namespace tandem::testing
