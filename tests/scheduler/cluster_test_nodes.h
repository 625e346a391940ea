// In-test prefill and decode nodes that speak the router's side of the disaggregation protocol
// (docs/protocol.md) over real RpcServers (127.0.0.1, ephemeral ports): PrefillRequest, a
// relayed KvReservation refusal, FirstToken, KvReady, TokenChunks, Abort, Error, ClusterView and
// periodic LoadReports. What passes between P and D (ReserveKv, the KV itself over UCX in the
// real nodes) is an in-process call here, recorded in D's inbox; everything the router sees goes
// over TCP.
//
// Deterministic "model": the first token is 10 + sum(prompt) % 50, then each next token is the
// previous + 1, until max_tokens tokens in total (finish reason LENGTH).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "common/rpc/rpc_server.h"
#include "common/rpc/wire_status.h"
#include "proto/tandem.pb.h"
#include "scheduler/cluster_client.h"

namespace tandem::testing {

using std::chrono::milliseconds;

inline rpc::ConnectionOptions FastConnection() {
  rpc::ConnectionOptions o;
  o.connect_timeout = milliseconds(1000);
  o.hello_timeout = milliseconds(500);
  o.heartbeat_interval = milliseconds(50);
  o.idle_timeout = milliseconds(1000);
  o.write_timeout = milliseconds(1000);
  o.drain_timeout = milliseconds(200);
  return o;
}

inline std::vector<int32_t> ExpectedTokens(const std::vector<int32_t>& prompt, int max_tokens) {
  const int32_t first = 10 + std::accumulate(prompt.begin(), prompt.end(), 0) % 50;
  std::vector<int32_t> out;
  for (int i = 0; i < max_tokens; ++i) out.push_back(first + i);
  return out;
}

// What a fake node received, for assertions.
class Inbox {
 public:
  void Add(proto::Envelope env) {
    std::lock_guard<std::mutex> lock(mu_);
    msgs_.push_back(std::move(env));
    cv_.notify_all();
  }
  // Waits until a message with `payload` for `request_id` ("" = any) arrived.
  bool WaitFor(proto::Envelope::PayloadCase payload, const std::string& request_id, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return CountLocked(payload, request_id) > 0; });
  }
  int Count(proto::Envelope::PayloadCase payload, const std::string& request_id = "") {
    std::lock_guard<std::mutex> lock(mu_);
    return CountLocked(payload, request_id);
  }
  std::vector<proto::Envelope> All() {
    std::lock_guard<std::mutex> lock(mu_);
    return msgs_;
  }

 private:
  static std::string IdOf(const proto::Envelope& e) {
    if (e.has_prefill_request()) return e.prefill_request().request_id();
    if (e.has_reserve_kv()) return e.reserve_kv().request_id();
    if (e.has_abort()) return e.abort().request_id();
    return "";
  }
  int CountLocked(proto::Envelope::PayloadCase payload, const std::string& id) {
    int n = 0;
    for (const auto& e : msgs_) n += e.payload_case() == payload && (id.empty() || IdOf(e) == id);
    return n;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<proto::Envelope> msgs_;
};

class FakeNode {
 public:
  FakeNode(proto::Role role, std::string id, uint32_t num_blocks = 64, uint32_t block_size = 16)
      : role_(role), id_(std::move(id)), num_blocks_(num_blocks), block_size_(block_size), free_(num_blocks) {}
  virtual ~FakeNode() { Stop(); }

  void Start() {
    rpc::RpcServerOptions o;
    o.port = 0;
    o.hello.set_role(role_);
    o.hello.set_node_id(id_);
    if (role_ == proto::ROLE_DECODE) {
      o.hello.set_num_kv_blocks(num_blocks_);
      o.hello.set_block_size_tokens(block_size_);
      o.hello.set_kv_reserves_output_blocks(true);  // the tests count prompt + max_tokens per request
    }
    o.connection = FastConnection();
    rpc::RpcServerCallbacks cb;
    cb.on_peer_ready = [this](const rpc::Connection::Ptr& c) {
      if (c->peer_hello().role() == proto::ROLE_ROUTER) {
        std::lock_guard<std::mutex> lock(mu_);
        router_ = c;
      }
    };
    cb.on_message = [this](const rpc::Connection::Ptr&, proto::Envelope&& env) {
      inbox.Add(env);
      Handle(env);
    };
    server_ = std::make_unique<rpc::RpcServer>(std::move(o), std::move(cb));
    ASSERT_TRUE(server_->Start().ok());
    reporter_ = std::thread([this] {
      while (!stop_reporter_.load()) {
        if (reporting.load()) SendLoad();
        std::this_thread::sleep_for(milliseconds(20));
      }
    });
  }

  // Simulates a crash as the router sees it: the listening socket and connections go away.
  void Stop() {
    stop_reporter_ = true;
    if (reporter_.joinable()) reporter_.join();
    if (server_) server_->Stop();
    std::lock_guard<std::mutex> lock(mu_);
    router_.reset();  // sends after a crash go nowhere
  }

  NodeAddress address() const { return {id_, "127.0.0.1", server_->port()}; }
  uint32_t free_blocks() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_;
  }

  Inbox inbox;
  std::atomic<bool> reporting{true};
  std::atomic<uint32_t> reported_free_override{0};  // > 0: report this instead of the truth

 protected:
  virtual void Handle(const proto::Envelope& env) = 0;

  void SendToRouter(proto::Envelope env) {
    rpc::Connection::Ptr c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      c = router_;
    }
    if (c) c->Send(std::move(env)).IgnoreError();
  }

  // Prefill nodes: the decode nodes they report reaching.
  virtual std::vector<std::string> ConnectedDecodeNodes() { return {}; }

  void SendLoad() {
    proto::Envelope env;
    proto::LoadReport* r = env.mutable_load_report();
    r->set_node_id(id_);
    r->set_role(role_);
    for (const std::string& d : ConnectedDecodeNodes()) r->add_connected_decode_nodes(d);
    {
      std::lock_guard<std::mutex> lock(mu_);
      r->set_free_blocks(reported_free_override.load() ? reported_free_override.load() : free_);
      r->set_total_blocks(num_blocks_);
    }
    SendToRouter(std::move(env));
  }

  const proto::Role role_;
  const std::string id_;
  const uint32_t num_blocks_;
  const uint32_t block_size_;
  std::mutex mu_;
  uint32_t free_;  // GUARDED_BY(mu_)
  rpc::Connection::Ptr router_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::thread reporter_;
  std::atomic<bool> stop_reporter_{false};
};

class FakeDecode : public FakeNode {
 public:
  using FakeNode::FakeNode;
  // Stopped here, not only in ~FakeNode: the reporter thread calls virtual functions, which must
  // not run while this part of the object is being destroyed (TSan: a race on the vptr).
  ~FakeDecode() override { Stop(); }
  std::atomic<bool> refuse_all{false};
  std::atomic<bool> hold{false};  // reserve and take the KV, but never generate

  // P's ReserveKv, in process (recorded in the inbox). The block ids, or the refusal's reason.
  bool Reserve(const proto::ReserveKv& m, std::vector<uint32_t>* blocks, std::string* reason) {
    proto::Envelope env;
    *env.mutable_reserve_kv() = m;
    inbox.Add(env);
    const uint32_t tokens = m.prompt_token_ids_size() + m.sampling().max_tokens();
    const uint32_t needed = (tokens + block_size_ - 1) / block_size_;
    std::lock_guard<std::mutex> lock(mu_);
    if (refuse_all.load() || needed > free_) {
      *reason = "not enough free KV blocks: need " + std::to_string(needed);
      return false;
    }
    free_ -= needed;
    reserved_[m.request_id()] = {needed, static_cast<int>(m.sampling().max_tokens())};
    for (uint32_t i = 0; i < needed; ++i) blocks->push_back(next_block_++);
    return true;
  }

  // The P -> D KvReady, in process.
  void KvReady(const std::string& id, int32_t first_token) {
    int max_tokens = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = reserved_.find(id);
      if (it == reserved_.end()) return;
      max_tokens = it->second.max_tokens;
    }
    if (hold.load()) return;
    for (int i = 1; i < max_tokens; ++i) {
      proto::Envelope env;
      proto::TokenChunk* c = env.mutable_token_chunk();
      c->set_request_id(id);
      c->add_token_ids(first_token + i);
      c->set_num_generated_tokens(i + 1);
      if (i + 1 == max_tokens) {
        c->set_finished(true);
        c->set_finish_reason(proto::FINISH_REASON_LENGTH);
      }
      SendToRouter(std::move(env));
    }
    Release(id);
  }
  void Release(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = reserved_.find(id);
    if (it == reserved_.end()) return;
    free_ += it->second.blocks;
    reserved_.erase(it);
  }

 protected:
  void Handle(const proto::Envelope& env) override {
    if (env.has_abort()) Release(env.abort().request_id());
  }

 private:
  struct Reservation {
    uint32_t blocks = 0;
    int max_tokens = 0;
  };
  std::map<std::string, Reservation> reserved_;  // GUARDED_BY(mu_)
  uint32_t next_block_ = 0;
};

class FakePrefill : public FakeNode {
 public:
  FakePrefill(std::string id, std::vector<FakeDecode*> decodes)
      : FakeNode(proto::ROLE_PREFILL, std::move(id)), decodes_(std::move(decodes)) {}
  ~FakePrefill() override {
    Stop();
    for (auto& t : workers_) t.join();
  }
  std::atomic<bool> hold{false};             // queue prompts forever
  std::atomic<bool> kv_before_first{false};  // hand KV to D, then send FirstToken 100 ms later
  std::atomic<int> fail_with{0};             // != 0: answer Error with this StatusCode
  // Blocks the decode node reserved for `id` when this node asked (-1: never).
  int ReservedBlocks(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = reserved_blocks_.find(id);
    return it == reserved_blocks_.end() ? -1 : it->second;
  }
  // Decode node ids this prefill node reports reaching (default: all of them).
  void SetConnected(std::vector<std::string> ids) {
    std::lock_guard<std::mutex> lock(mu_);
    connected_ = std::move(ids);
    connected_set_ = true;
  }

 protected:
  std::vector<std::string> ConnectedDecodeNodes() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (connected_set_) return connected_;
    std::vector<std::string> all;
    for (FakeDecode* d : decodes_) all.push_back(d->address().id);
    return all;
  }

  void Handle(const proto::Envelope& env) override {
    if (env.has_abort()) {  // as the real node does: tell D to release what it reserved
      for (FakeDecode* d : decodes_) d->Release(env.abort().request_id());
      return;
    }
    if (!env.has_prefill_request() || hold.load()) return;
    const proto::PrefillRequest pr = env.prefill_request();
    if (fail_with.load() != 0) {
      SendToRouter(rpc::MakeErrorEnvelope(Status(static_cast<StatusCode>(fail_with.load()), "injected failure"),
                                          pr.request_id()));
      return;
    }
    FakeDecode* d = nullptr;
    for (FakeDecode* c : decodes_) {
      if (c->address().id == pr.decode_node_id()) d = c;
    }
    const std::vector<int32_t> prompt(pr.prompt_token_ids().begin(), pr.prompt_token_ids().end());
    const int32_t first = ExpectedTokens(prompt, 1)[0];
    proto::Envelope ft;
    ft.mutable_first_token()->set_request_id(pr.request_id());
    ft.mutable_first_token()->set_token_id(first);
    if (pr.sampling().max_tokens() == 1) {
      ft.mutable_first_token()->set_finished(true);
      ft.mutable_first_token()->set_finish_reason(proto::FINISH_REASON_LENGTH);
      SendToRouter(ft);
      return;  // no KV to move, so nothing was reserved
    }
    // Reserve on D before the last chunk, as the real node does; a refusal goes back to the router.
    proto::ReserveKv reserve;
    reserve.set_request_id(pr.request_id());
    *reserve.mutable_prompt_token_ids() = pr.prompt_token_ids();
    *reserve.mutable_sampling() = pr.sampling();
    reserve.set_router_id("router");
    std::vector<uint32_t> blocks;
    std::string reason = "decode node " + pr.decode_node_id() + " unknown";
    if (d == nullptr || !d->Reserve(reserve, &blocks, &reason)) {
      proto::Envelope refused;
      proto::KvReservation* r = refused.mutable_kv_reservation();
      r->set_request_id(pr.request_id());
      r->set_decode_node_id(pr.decode_node_id());
      r->set_ok(false);
      r->set_reason(reason);
      SendToRouter(std::move(refused));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      reserved_blocks_[pr.request_id()] = static_cast<int>(blocks.size());
    }
    if (kv_before_first.load()) {
      d->KvReady(pr.request_id(), first);
      std::lock_guard<std::mutex> lock(workers_mu_);
      workers_.emplace_back([this, ft] {
        std::this_thread::sleep_for(milliseconds(100));
        SendToRouter(ft);
      });
      return;
    }
    SendToRouter(ft);
    d->KvReady(pr.request_id(), first);
  }

 private:
  std::map<std::string, int> reserved_blocks_;  // GUARDED_BY(mu_): blocks D reserved per request
  std::vector<FakeDecode*> decodes_;
  std::vector<std::string> connected_;  // GUARDED_BY(mu_)
  bool connected_set_ = false;          // GUARDED_BY(mu_)
  std::mutex workers_mu_;
  std::vector<std::thread> workers_;
};

}  // namespace tandem::testing
