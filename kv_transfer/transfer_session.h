// When bytes move: the per-request hand-off of KV blocks from a prefill node (the sender) to a
// decode node (the receiver). One KvSendSession per request on the prefill node, one
// KvReceiveSession per request on the decode node. Both are transport-agnostic, hold no
// protobuf types (the control-plane messages in proto/ are converted to the plain structs
// below at the node's edge), and take `now` as an argument so tests drive time.
//
// Who initiates: the prefill node PUSHES into blocks the decode node RESERVED.
//  - The decode node owns its pool, so it decides admission: it reserves blocks before any
//    byte moves and can refuse (no space -> the router picks another decode node or queues).
//    A writer can never overrun memory the owner did not offer.
//  - Pushing lets the prefill send each layer as soon as that layer is computed, overlapping
//    the transfer with the rest of the forward pass; when the last layer finishes only one
//    layer's transfer and a flush remain on the critical path to the first decode step.
//  - The alternative is DistServe's pull: prefill keeps the KV in its own pool and the decode
//    node GETs it when it has room, which absorbs decode-side bursts in prefill memory. It
//    costs the layer-wise overlap (the decode side only learns the KV exists after prefill is
//    over) and makes prefill memory a queue whose length decode controls. We keep push and
//    absorb bursts at the router (placement + admission) and with the reservation refusal.
//
//   Prefill (KvSendSession)                               Decode (KvReceiveSession)
//                                                         kReserved   (blocks reserved in D's pool)
//                                                            | MarkReservationSent
//   kAwaitingReservation <------ KvReservation --------------+
//      | OnReservation (layers computed so far are posted)   v
//   kSending  --- OnLayerComputed(l): PUTs of layer l -->  kAwaitingKv   (D keeps progressing
//      | last layer posted: PostFlush                        |           its transport)
//   kFlushing                                                |
//      | flush complete: every byte visible at D             |
//   kKvReady  [P's blocks released] ---- KvReady ----------> | OnKvReady
//      | MarkNotified                                        v
//   kDone                                                 kAdmitted   (TakeBlocks -> decode batch)
//
//   Failure (Abort, timeout, transport error, peer failure or peer abort), on either side:
//      writes may still be in flight ->  kDraining --(quiet, or drain timeout)--> terminal
//      otherwise                     ->  terminal directly
//   terminal failures: kAborted, kTimedOut, kFailed (sender) / kPeerFailed (receiver)
//
// Invariants:
//  - Blocks are released exactly once through the BlockReleaser, on entering kKvReady (sender:
//    the bytes now live at the peer) or any failure terminal state; a receiver in kAdmitted
//    hands them to the decode engine instead (TakeBlocks). No path leaks them.
//  - A block is never released while a write into it may still happen: the sender drains its
//    own transfers before it ends, and sends KvAbort (kSendAbort) only once it has ended, so a
//    receiver that gets KvAbort may free at once; a receiver that gives up first drains until
//    that KvAbort arrives or its drain timeout passes.
//  - Events after the end are ignored (late layers, duplicate messages): the engine need not
//    know whether the session is still alive.
//
// Threads: a session is used only from the thread that owns its Transport (the node loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kv_transfer/kv_layout.h"
#include "kv_transfer/transport.h"

namespace tandem {

using SessionClock = std::chrono::steady_clock;

// Decode -> prefill: where to write this request's KV. Block i of the prompt goes to
// block_ids[i] of the decode pool, except the first skip_blocks: the decode node holds their
// content already (its prefix cache), so they are not sent.
struct KvReservation {
  uint64_t request_id = 0;
  uint64_t layout_hash = 0;  // KvLayout::compatibility_hash() of the decode pool
  int pool_num_blocks = 0;   // capacity of the decode pool (region offsets depend on it)
  std::vector<int> block_ids;
  int skip_blocks = 0;
};

// Prefill -> decode: every byte of the request's KV is visible in the reserved blocks.
struct KvReadyNotice {
  uint64_t request_id = 0;
  uint64_t layout_hash = 0;
  int num_blocks = 0;
  uint64_t bytes = 0;  // what the sender moved, for the event log and a cross-check
};

// What the owner must do after an event, besides reading state().
enum class SessionAction {
  kNone,
  kSendKvReady,  // sender: send KvReadyNotice (ready_notice()), then MarkNotified
  kSendAbort,    // either side: tell the peer this request's transfer is over
};

struct SessionOptions {
  std::chrono::milliseconds transfer_timeout{10000};  // creation -> kKvReady / kAdmitted
  std::chrono::milliseconds drain_timeout{2000};      // kDraining -> terminal at the latest
};

// Gives blocks back to the pool that owns them. Called at most once per session.
using BlockReleaser = std::function<void(std::span<const int> block_ids)>;

enum class SendState {
  kAwaitingReservation, kSending, kFlushing, kKvReady, kDraining,
  kDone, kAborted, kTimedOut, kFailed,  // terminal
};
enum class ReceiveState {
  kReserved, kAwaitingKv, kDraining,
  kAdmitted, kAborted, kTimedOut, kPeerFailed, kFailed,  // terminal
};
std::string_view SendStateName(SendState s);
std::string_view ReceiveStateName(ReceiveState s);
bool IsTerminal(SendState s);
bool IsTerminal(ReceiveState s);

class KvSendSession {
 public:
  // `src_block_ids`: the request's blocks in the local pool, in sequence order.
  KvSendSession(uint64_t request_id, Transport& transport, const KvLayout& local_layout,
                std::vector<int> src_block_ids, BlockReleaser release,
                SessionClock::time_point now, SessionOptions options = {});
  ~KvSendSession();  // REQUIRES: terminal or never reserved; otherwise aborts and releases
  KvSendSession(const KvSendSession&) = delete;
  KvSendSession& operator=(const KvSendSession&) = delete;

  // The decode node's reservation arrived; `peer` is its connected transport peer.
  [[nodiscard]] SessionAction OnReservation(const KvReservation& reservation, PeerId peer,
                                            SessionClock::time_point now);
  // Layer `layer`'s K and V are in memory (REQUIRES: on a GPU, its stream synchronized).
  // Layers come in order 0, 1, ...; out of order is a bug and fails the session. Posts the
  // layer's PUTs and progresses the transport once, so that they move during the next layers.
  [[nodiscard]] SessionAction OnLayerComputed(int layer, SessionClock::time_point now);
  // Advances transfers and timeouts; call every loop iteration while not terminal.
  [[nodiscard]] SessionAction Poll(SessionClock::time_point now);
  // The KvReady notice went out. REQUIRES: state() == kKvReady.
  void MarkNotified(SessionClock::time_point now);
  // Local cancel (client disconnect, shutdown) or the decode node's KvAbort.
  [[nodiscard]] SessionAction Abort(Status reason, SessionClock::time_point now);

  SendState state() const { return state_; }
  const Status& status() const { return status_; }  // why it failed; Ok otherwise
  KvReadyNotice ready_notice() const;
  uint64_t request_id() const { return request_id_; }
  size_t descriptors_posted() const { return descriptors_posted_; }
  uint64_t bytes_posted() const { return bytes_posted_; }
  // Every state entered, with its time (the request's event log).
  const std::vector<std::pair<SendState, SessionClock::time_point>>& history() const {
    return history_;
  }

 private:
  void Enter(SendState s, SessionClock::time_point now);
  SessionAction PostReadyLayers(SessionClock::time_point now);
  SessionAction Fail(SendState terminal, Status reason, SessionClock::time_point now);
  SessionAction Finish(SessionClock::time_point now);  // leaves kDraining
  void ReleaseBlocks();

  uint64_t request_id_;
  Transport& transport_;
  KvLayout local_layout_;
  std::vector<int> src_block_ids_;
  int skip_blocks_ = 0;  // leading source blocks the receiver holds already (KvReservation)
  std::span<const int> sent_blocks() const { return std::span<const int>(src_block_ids_).subspan(skip_blocks_); }
  BlockReleaser release_;
  SessionOptions options_;
  SessionClock::time_point deadline_;
  SessionClock::time_point drain_deadline_{};

  SendState state_ = SendState::kAwaitingReservation;
  SendState drain_target_ = SendState::kFailed;
  Status status_;
  bool reserved_ = false;
  PeerId peer_ = 0;
  KvLayout remote_layout_;
  std::vector<int> dst_block_ids_;
  int layers_computed_ = 0;
  int layers_posted_ = 0;
  std::vector<TransferId> in_flight_;  // puts, then the flush
  TransferId flush_id_ = 0;
  bool flush_posted_ = false;
  bool released_ = false;
  size_t descriptors_posted_ = 0;
  uint64_t bytes_posted_ = 0;
  std::vector<std::pair<SendState, SessionClock::time_point>> history_;
};

class KvReceiveSession {
 public:
  // `reserved_block_ids`: blocks already taken from the local pool for this request.
  KvReceiveSession(uint64_t request_id, const KvLayout& local_layout,
                   std::vector<int> reserved_block_ids, BlockReleaser release,
                   SessionClock::time_point now, SessionOptions options = {});
  ~KvReceiveSession();  // releases the blocks if neither admitted nor released yet
  KvReceiveSession(const KvReceiveSession&) = delete;
  KvReceiveSession& operator=(const KvReceiveSession&) = delete;

  KvReservation reservation() const;
  // The reservation went out to the prefill node. REQUIRES: state() == kReserved.
  void MarkReservationSent(SessionClock::time_point now);
  // Validates the notice (request id, layout hash, block count) -> kAdmitted, or kFailed.
  [[nodiscard]] SessionAction OnKvReady(const KvReadyNotice& notice, SessionClock::time_point now);
  // The sender's KvAbort: it has ended and none of its writes are in flight.
  [[nodiscard]] SessionAction OnPeerAborted(SessionClock::time_point now);
  // The control connection to the sender broke; its writes may still land until it is gone.
  [[nodiscard]] SessionAction OnPeerFailed(Status reason, SessionClock::time_point now);
  [[nodiscard]] SessionAction Abort(Status reason, SessionClock::time_point now);
  [[nodiscard]] SessionAction Poll(SessionClock::time_point now);

  // The blocks, now owned by the decode engine. REQUIRES: state() == kAdmitted; once.
  std::vector<int> TakeBlocks();

  ReceiveState state() const { return state_; }
  const Status& status() const { return status_; }
  uint64_t request_id() const { return request_id_; }
  const std::vector<std::pair<ReceiveState, SessionClock::time_point>>& history() const {
    return history_;
  }

 private:
  void Enter(ReceiveState s, SessionClock::time_point now);
  SessionAction GiveUp(ReceiveState terminal, Status reason, SessionClock::time_point now);
  void ReleaseBlocks();

  uint64_t request_id_;
  KvLayout local_layout_;
  std::vector<int> block_ids_;
  BlockReleaser release_;
  SessionOptions options_;
  SessionClock::time_point deadline_;
  SessionClock::time_point drain_deadline_{};
  ReceiveState state_ = ReceiveState::kReserved;
  ReceiveState drain_target_ = ReceiveState::kAborted;
  Status status_;
  bool released_ = false;  // released to the pool or handed to the engine
  std::vector<std::pair<ReceiveState, SessionClock::time_point>> history_;
};

}  // namespace tandem
