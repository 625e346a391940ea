// The real thing: `tandem decode` and `tandem prefill` as child processes on 127.0.0.1, KV over
// UCX (UCX_TLS=tcp,self and sm,self), and this test as the router with a real RpcClient to each.
// The prefill node starts without --decode-node: like a real router, the test tells it where the
// decode node is (ClusterView) and waits until its load report says it reaches it. Checks
// disaggregated tokens equal single-process Engine output (greedy and seeded), that the decode
// node's free blocks return to their start value, and that killing the decode node leaves the
// prefill node in a terminal state, blocks freed, still serving.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/rpc/cluster_auth.h"
#include "common/rpc/rpc_client.h"
#include "kv_transfer/child_process.h"
#include "tests/nodes/nodes_test_util.h"
#include "tests/nodes/random_envelope.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using testing::FivePrompts;
using testing::ReferenceOutputs;
using testing::TestPrompt;
using testing::TinyModelDir;

const std::string kTandem = std::string(TANDEM_BINARY_DIR) + "/bin/tandem";

// Everything the router receives from one node, with bounded waits.
class Inbox {
 public:
  void Push(proto::Envelope&& e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.has_load_report()) {
      last_load_ = e.load_report();
    } else {
      messages_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  // Removes and returns the first message for `id` matching `pred`.
  template <typename Pred>
  std::optional<proto::Envelope> Take(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<proto::Envelope> out;
    cv_.wait_for(lock, timeout, [&] {
      for (auto it = messages_.begin(); it != messages_.end(); ++it) {
        if (pred(*it)) {
          out = std::move(*it);
          messages_.erase(it);
          return true;
        }
      }
      return false;
    });
    return out;
  }
  template <typename Pred>
  bool WaitLoad(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return last_load_.has_value() && pred(*last_load_); });
  }
  // How many messages of each payload (by field name) arrived and were not taken.
  std::map<std::string, int> CountByPayload() {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int> out;
    for (const proto::Envelope& e : messages_) {
      const auto* f = proto::Envelope::descriptor()->FindFieldByNumber(e.payload_case());
      std::string name = f ? f->name() : "none";
      if (e.has_kv_reservation()) name += e.kv_reservation().ok() ? "(ok)" : "(refused)";
      ++out[name];
    }
    return out;
  }
  proto::LoadReport last_load() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_load_.value_or(proto::LoadReport());
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<proto::Envelope> messages_;
  std::optional<proto::LoadReport> last_load_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Spawns `tandem <args>` with stdout/stderr in files and waits for "listening on ...:PORT".
struct Node {
  ChildProcess child;
  uint16_t port = 0;
  std::string log;
};

Node StartNode(const std::string& dir, const std::string& name, const std::string& args, const std::string& tls) {
  Node n;
  const std::string out = dir + "/" + name + ".out";
  n.log = dir + "/" + name + ".err";
  auto child =
      ChildProcess::Spawn({"/bin/sh", "-c", "exec '" + kTandem + "' " + args + " > '" + out + "' 2> '" + n.log + "'"},
                          {"UCX_TLS=" + tls, "UCX_WARN_UNUSED_ENV_VARS=n"});
  EXPECT_TRUE(child.ok()) << child.status().ToString();
  if (!child.ok()) return n;
  n.child = std::move(child).value();
  const std::string marker = "listening on 127.0.0.1:";
  for (int i = 0; i < 600; ++i) {  // 30 s: model load + UCX init on a busy 2-core machine
    const std::string text = ReadFile(out);
    const size_t at = text.find(marker);
    if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
      n.port = static_cast<uint16_t>(std::stoi(text.substr(at + marker.size())));
      return n;
    }
    auto done = n.child.TryWait();
    if (done.ok() && done->has_value()) break;
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << name << " did not start; stderr:\n" << ReadFile(n.log);
  return n;
}

// A router (or, with a hello given, another peer) connected to the node at `port`.
std::unique_ptr<rpc::RpcClient> Connect(uint16_t port, Inbox* inbox, const std::string& secret = "",
                                        const proto::Hello* hello = nullptr) {
  rpc::RpcClientOptions o;
  o.port = port;
  o.connection.cluster_secret = secret;
  o.hello.set_role(proto::ROLE_ROUTER);
  o.hello.set_node_id("router-test");
  if (hello != nullptr) o.hello = *hello;
  rpc::RpcClientCallbacks cb;
  cb.on_message = [inbox](proto::Envelope&& e) { inbox->Push(std::move(e)); };
  auto c = std::make_unique<rpc::RpcClient>(o, cb);
  EXPECT_TRUE(c->Start().ok());
  EXPECT_TRUE(c->WaitReady(10s).ok());
  return c;
}

class NodesProcessTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(TinyModelDir().empty());
    std::string tmpl = (std::filesystem::temp_directory_path() / "tandem_nodes_run_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    StartDecode(0);
    ASSERT_NE(decode_.port, 0);
    prefill_ = StartNode(dir_, "prefill",
                         "prefill --model '" + TinyModelDir() +
                             "' --port 0 --node-id prefill-0 --threads 1 "
                             "--kv-cache-gib 0.02 --max-num-batched-tokens 64",
                         GetParam());
    ASSERT_NE(prefill_.port, 0);
    to_p_ = Connect(prefill_.port, &from_p_);
    proto::Envelope view;
    proto::ClusterView::NodeAddress* d = view.mutable_cluster_view()->add_decode_nodes();
    d->set_node_id("decode-0");
    d->set_host("127.0.0.1");
    d->set_port(decode_.port);
    ASSERT_TRUE(to_p_->Send(view).ok());
    ASSERT_TRUE(WaitReachesDecode(20s)) << from_p_.last_load().DebugString();
  }

  // The prefill node's load report lists decode-0 among the decode nodes it reaches.
  bool WaitReachesDecode(std::chrono::milliseconds timeout) {
    return from_p_.WaitLoad(
        [](const proto::LoadReport& r) {
          return std::find(r.connected_decode_nodes().begin(), r.connected_decode_nodes().end(), "decode-0") !=
                 r.connected_decode_nodes().end();
        },
        timeout);
  }
  void TearDown() override {
    if (to_p_) to_p_->Stop();
    if (to_d_) to_d_->Stop();
    prefill_.child.Kill();
    decode_.child.Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void StartDecode(uint16_t port) {
    decode_ = StartNode(dir_, "decode",
                        "decode --model '" + TinyModelDir() + "' --port " + std::to_string(port) +
                            " --node-id decode-0 --threads 1 --kv-cache-gib 0.02 --max-num-seqs 8 "
                            "--kv-timeout-ms 5000",
                        GetParam());
    if (decode_.port == 0) return;
    if (to_d_) to_d_->Stop();
    from_d_ = std::make_unique<Inbox>();
    to_d_ = Connect(decode_.port, from_d_.get());
  }

  static proto::Envelope MakeRequest(const std::string& id, const TestPrompt& p) {
    proto::Envelope e;
    proto::PrefillRequest* r = e.mutable_prefill_request();
    r->set_request_id(id);
    for (int32_t t : p.prompt) r->add_prompt_token_ids(t);
    proto::SamplingParams* s = r->mutable_sampling();
    s->set_temperature(p.params.temperature);
    s->set_top_p(p.params.top_p);
    s->set_top_k(p.params.top_k);
    s->set_repetition_penalty(p.params.repetition_penalty);
    if (p.params.seed) s->set_seed(*p.params.seed);
    s->set_max_tokens(static_cast<uint32_t>(p.params.max_tokens));
    s->set_ignore_eos(p.params.ignore_eos);
    r->set_decode_node_id("decode-0");
    return e;
  }

  static auto For(const std::string& id) {
    return [id](const proto::Envelope& e) {
      return (e.has_kv_reservation() && e.kv_reservation().request_id() == id) ||
             (e.has_first_token() && e.first_token().request_id() == id) ||
             (e.has_token_chunk() && e.token_chunk().request_id() == id) ||
             (e.has_error() && e.error().request_id() == id);
    };
  }

  // The router's part of one request (the prefill node reserves on the decode node itself);
  // returns every token, or an empty vector on failure.
  std::vector<int32_t> Run(const std::string& id, const TestPrompt& p) {
    EXPECT_TRUE(to_p_->Send(MakeRequest(id, p)).ok());
    std::vector<int32_t> tokens;
    auto first = from_p_.Take(For(id), 20s);
    if (!first || !first->has_first_token()) {
      ADD_FAILURE() << id << ": " << (first ? first->DebugString() : "no first token");
      return {};
    }
    tokens.push_back(first->first_token().token_id());
    if (first->first_token().finished()) return tokens;
    for (;;) {
      auto chunk = from_d_->Take(For(id), 20s);
      if (!chunk || !chunk->has_token_chunk()) {
        ADD_FAILURE() << id << ": " << (chunk ? chunk->DebugString() : "timeout waiting for tokens");
        return {};
      }
      for (int32_t t : chunk->token_chunk().token_ids()) tokens.push_back(t);
      if (chunk->token_chunk().finished()) return tokens;
    }
  }

  void CheckFivePrompts(bool greedy) {
    ASSERT_TRUE(from_d_->WaitLoad([](const proto::LoadReport& r) { return r.total_blocks() > 0; }, 5s));
    const uint32_t start_free = from_d_->last_load().free_blocks();
    const auto prompts = FivePrompts(greedy);
    const auto expected = ReferenceOutputs(TinyModelDir(), prompts);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string id = std::string(greedy ? "g" : "s") + std::to_string(i);
      EXPECT_EQ(Run(id, prompts[i]), expected[i]) << id;
    }
    EXPECT_TRUE(from_d_->WaitLoad(
        [&](const proto::LoadReport& r) { return r.free_blocks() == start_free && r.running_requests() == 0; }, 5s))
        << "decode free blocks " << from_d_->last_load().free_blocks() << " != " << start_free;
  }

  std::string dir_;
  Node decode_, prefill_;
  Inbox from_p_;
  std::unique_ptr<Inbox> from_d_;
  std::unique_ptr<rpc::RpcClient> to_p_, to_d_;
};

TEST_P(NodesProcessTest, GreedyMatchesSingleProcess) { CheckFivePrompts(true); }
TEST_P(NodesProcessTest, SeededMatchesSingleProcess) { CheckFivePrompts(false); }

TEST_P(NodesProcessTest, DecodeNodeDeathLeavesPrefillTerminalAndServing) {
  // One request end to end first, so the prefill node is connected to the decode node.
  const auto prompts = FivePrompts(true);
  ASSERT_FALSE(Run("warm", prompts[0]).empty());
  ASSERT_TRUE(from_p_.WaitLoad([](const proto::LoadReport& r) { return r.total_blocks() > 0; }, 5s));
  const uint32_t p_total = from_p_.last_load().total_blocks();

  // The decode node dies; then a request for it reaches the prefill node (which may or may not
  // have noticed yet: either it refuses at once, or its reservation request fails with the lost
  // connection).
  const uint16_t old_port = decode_.port;
  decode_.child.Kill();
  ASSERT_TRUE(to_p_->Send(MakeRequest("dead", prompts[4])).ok());
  // The prefill node answers (an error; a refusal it relays because its ReserveKv could not be
  // sent; or the first token if it computed before noticing) and ends with nothing queued or in
  // transfer and all its blocks free.
  auto answer = from_p_.Take(For("dead"), 20s);
  ASSERT_TRUE(answer.has_value()) << "no answer; prefill log:\n" << ReadFile(prefill_.log);
  EXPECT_TRUE(answer->has_error() || answer->has_first_token() ||
              (answer->has_kv_reservation() && !answer->kv_reservation().ok()))
      << answer->DebugString();
  EXPECT_TRUE(from_p_.WaitLoad(
      [&](const proto::LoadReport& r) {
        return r.queued_requests() == 0 && r.running_requests() == 0 && r.free_blocks() == p_total &&
               r.connected_decode_nodes_size() == 0;
      },
      15s))
      << from_p_.last_load().DebugString();

  // A new decode node on the same address: the prefill node reconnects and serves again.
  StartDecode(old_port);
  ASSERT_NE(decode_.port, 0);
  ASSERT_TRUE(WaitReachesDecode(20s)) << from_p_.last_load().DebugString();
  const auto expected = ReferenceOutputs(TinyModelDir(), {prompts[1]});
  EXPECT_EQ(Run("again", prompts[1]), expected[0]);
}

// The router's Abort reaches the decode node directly, the prefill node's ReserveKv goes through
// the prefill node: the Abort can arrive first. The decode node remembers it and refuses the late
// reservation, so it never reserves (or decodes) a request the router gave up.
TEST_P(NodesProcessTest, AnAbortThatOvertakesTheReservationIsHonoured) {
  ASSERT_TRUE(from_d_->WaitLoad([](const proto::LoadReport& r) { return r.total_blocks() > 0; }, 5s));
  const uint32_t d_free = from_d_->last_load().free_blocks();
  proto::Envelope abort;
  abort.mutable_abort()->set_request_id("early");
  abort.mutable_abort()->set_reason("client went away");
  ASSERT_TRUE(to_d_->Send(abort).ok());
  std::this_thread::sleep_for(100ms);  // the Abort is there first
  ASSERT_TRUE(to_p_->Send(MakeRequest("early", FivePrompts(true)[3])).ok());
  auto answer = from_p_.Take(For("early"), 20s);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->has_kv_reservation()) << answer->DebugString();  // the refusal, relayed
  EXPECT_FALSE(answer->kv_reservation().ok());
  EXPECT_NE(answer->kv_reservation().reason().find("aborted by the router"), std::string::npos)
      << answer->DebugString();
  EXPECT_FALSE(from_d_->Take(For("early"), 500ms).has_value()) << "the decode node streamed it anyway";
  EXPECT_TRUE(from_d_->WaitLoad([&](const proto::LoadReport& r) { return r.free_blocks() == d_free; }, 5s));
  // Ids are not poisoned for good: another request is served normally.
  const auto expected = ReferenceOutputs(TinyModelDir(), {FivePrompts(true)[1]});
  EXPECT_EQ(Run("after-early", FivePrompts(true)[1]), expected[0]);
}

// Seeded random control messages (tests/nodes/random_envelope.h) from the router to both nodes
// and from a peer claiming to be a prefill node to the decode node, about a small pool of request
// ids so that reservations, KvReady, aborts and requests collide: neither node may crash, drop a
// connection over a well-formed message, or keep a block once the ids are aborted; both serve a
// real request exactly afterwards. The services' protobuf handling needs the whole engine and UCX,
// which the clang-built libFuzzer targets do not compile, hence a seeded storm here.
TEST_P(NodesProcessTest, ArbitraryMessagesLeaveBothNodesServingAndNoBlockHeld) {
  ASSERT_TRUE(from_d_->WaitLoad([](const proto::LoadReport& r) { return r.total_blocks() > 0; }, 5s));
  ASSERT_TRUE(from_p_.WaitLoad([](const proto::LoadReport& r) { return r.total_blocks() > 0; }, 5s));
  const uint32_t d_free = from_d_->last_load().free_blocks(), p_total = from_p_.last_load().total_blocks();

  proto::Hello fake;  // passes the decode node's checks: the layout hash is the one it announced
  fake.set_role(proto::ROLE_PREFILL);
  fake.set_node_id("prefill-fake");
  fake.set_kv_layout_hash(to_d_->peer_hello().kv_layout_hash());
  Inbox from_fake;
  auto fake_to_d = Connect(decode_.port, &from_fake, "", &fake);
  ASSERT_TRUE(fake_to_d->ready());

  testing::RandomEnvelopeOptions o;
  for (int i = 0; i < 6; ++i) o.request_ids.push_back("storm-" + std::to_string(i));
  o.node_ids = {"decode-0", "prefill-0", "router-test", "prefill-fake"};
  o.decode_node = "decode-0";
  o.router = "router-test";
  std::ifstream config(TinyModelDir() + "/config.json");
  o.vocab_size = nlohmann::json::parse(config).value("vocab_size", 0);
  ASSERT_GT(o.vocab_size, 0);
  const std::vector<std::string> payloads = {"prefill_request", "reserve_kv",  "kv_reservation", "kv_ready", "abort",
                                             "first_token",     "token_chunk", "load_report",    "error"};
  // TANDEM_STORM_SEED and TANDEM_STORM_MESSAGES make longer runs (tests/fuzz/README.md).
  const char* seed_env = std::getenv("TANDEM_STORM_SEED");
  const char* count_env = std::getenv("TANDEM_STORM_MESSAGES");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : (GetParam() == "tcp,self" ? 1 : 2);
  const int messages = count_env ? std::atoi(count_env) : 4000;
  testing::RandomEnvelopeMaker maker(seed, o);
  std::mt19937 pick(seed);
  rpc::RpcClient* senders[] = {to_p_.get(), to_d_.get(), fake_to_d.get()};
  for (int i = 0; i < messages; ++i) {
    rpc::RpcClient* to = senders[pick() % 3];
    const proto::Envelope env = maker.Next(payloads);
    ASSERT_TRUE(to->Send(env).ok()) << "message " << i << " (seed " << seed << "): " << env.ShortDebugString()
                                    << "\nprefill log:\n"
                                    << ReadFile(prefill_.log) << "\ndecode log:\n"
                                    << ReadFile(decode_.log);
    if (i % 100 == 99) std::this_thread::sleep_for(20ms);  // let replies interleave
  }
  // Every pool id ends: aborted by the router on both nodes and by the "prefill node".
  for (const std::string& id : o.request_ids) {
    proto::Envelope abort;
    abort.mutable_abort()->set_request_id(id);
    for (rpc::RpcClient* to : senders) ASSERT_TRUE(to->Send(abort).ok());
  }
  std::this_thread::sleep_for(200ms);
  fake_to_d->Stop();
  // What came back, so a storm that validation turns away entirely does not pass unnoticed.
  std::map<std::string, int> seen[3];
  const char* names[] = {"prefill->router", "decode->router", "decode->fake prefill"};
  Inbox* inboxes[] = {&from_p_, from_d_.get(), &from_fake};
  for (int k = 0; k < 3; ++k) {
    seen[k] = inboxes[k]->CountByPayload();
    std::string line;
    for (const auto& [payload, n] : seen[k]) line += " " + payload + ":" + std::to_string(n);
    std::printf("[ storm ] %s:%s\n", names[k], line.c_str());
  }
  EXPECT_GT(seen[0]["first_token"], 0);         // requests prefilled
  EXPECT_GT(seen[1]["token_chunk"], 0);         // and decoded
  EXPECT_GT(seen[2]["kv_reservation(ok)"], 0);  // the fake prefill node's reservations granted
  for (Node* n : {&prefill_, &decode_}) {
    auto done = n->child.TryWait();
    ASSERT_TRUE(done.ok() && !done->has_value()) << "a node died; its log:\n" << ReadFile(n->log);
  }
  ASSERT_TRUE(to_p_->ready() && to_d_->ready());
  EXPECT_TRUE(from_p_.WaitLoad(
      [&](const proto::LoadReport& r) {
        return r.queued_requests() == 0 && r.running_requests() == 0 && r.free_blocks() == p_total;
      },
      20s))
      << from_p_.last_load().DebugString();
  EXPECT_TRUE(from_d_->WaitLoad(
      [&](const proto::LoadReport& r) { return r.free_blocks() == d_free && r.running_requests() == 0; }, 20s))
      << from_d_->last_load().DebugString();
  const auto prompts = FivePrompts(true);
  const auto expected = ReferenceOutputs(TinyModelDir(), {prompts[2]});
  EXPECT_EQ(Run("after-storm", prompts[2]), expected[0]);
}

// --cluster-secret-file on real processes: the router and a prefill node holding the secret get
// in (and the prefill node reaches the decode node over UCX), a router or a prefill node
// without it is refused with a message saying why.
TEST(NodesAuthProcessTest, OnlyPeersWithTheClusterSecretConnect) {
  ASSERT_FALSE(TinyModelDir().empty());
  std::string tmpl = (std::filesystem::temp_directory_path() / "tandem_nodes_auth_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  const std::string secret_file = dir + "/cluster.secret";
  ASSERT_TRUE(rpc::WriteNewClusterSecret(secret_file).ok());
  auto secret = rpc::LoadClusterSecret(secret_file);
  ASSERT_TRUE(secret.ok());
  const std::string common = " --model '" + TinyModelDir() + "' --port 0 --threads 1 --kv-cache-gib 0.02 ";
  Node decode = StartNode(dir, "decode", "decode" + common + "--node-id decode-0 --cluster-secret-file " + secret_file,
                          "tcp,self");
  Node prefill = StartNode(dir, "prefill",
                           "prefill" + common + "--node-id prefill-0 --cluster-secret-file " + secret_file, "tcp,self");
  Node outsider = StartNode(dir, "outsider", "prefill" + common + "--node-id prefill-9", "tcp,self");
  ASSERT_NE(decode.port, 0);
  ASSERT_NE(prefill.port, 0);
  ASSERT_NE(outsider.port, 0);

  {  // a router without the secret
    rpc::RpcClientOptions o;
    o.port = prefill.port;
    o.hello.set_role(proto::ROLE_ROUTER);
    o.hello.set_node_id("router-nosecret");
    rpc::RpcClient c(o, {});
    ASSERT_TRUE(c.Start().ok());
    EXPECT_FALSE(c.WaitReady(3s).ok());
    EXPECT_NE(c.last_status().message().find("requires cluster authentication"), std::string::npos)
        << c.last_status().ToString();
    c.Stop();
  }
  proto::Envelope view;
  proto::ClusterView::NodeAddress* d = view.mutable_cluster_view()->add_decode_nodes();
  d->set_node_id("decode-0");
  d->set_host("127.0.0.1");
  d->set_port(decode.port);
  const auto reaches = [](const proto::LoadReport& r) {
    return std::find(r.connected_decode_nodes().begin(), r.connected_decode_nodes().end(), "decode-0") !=
           r.connected_decode_nodes().end();
  };
  Inbox from_p, from_outsider;
  auto to_p = Connect(prefill.port, &from_p, *secret);
  ASSERT_TRUE(to_p->Send(view).ok());
  EXPECT_TRUE(from_p.WaitLoad(reaches, 20s)) << from_p.last_load().DebugString();
  auto to_outsider = Connect(outsider.port, &from_outsider);  // it has no secret: we need none
  ASSERT_TRUE(to_outsider->Send(view).ok());
  EXPECT_FALSE(from_outsider.WaitLoad(reaches, 3s));  // the decode node refuses it
  EXPECT_NE(ReadFile(outsider.log).find("requires cluster authentication"), std::string::npos)
      << ReadFile(outsider.log);

  to_p->Stop();
  to_outsider->Stop();
  for (Node* n : {&decode, &prefill, &outsider}) n->child.Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

INSTANTIATE_TEST_SUITE_P(Tls, NodesProcessTest, ::testing::Values("tcp,self", "sm,self"),
                         [](const auto& info) { return info.param == "tcp,self" ? "tcp" : "sm"; });

}  // namespace
}  // namespace tandem
