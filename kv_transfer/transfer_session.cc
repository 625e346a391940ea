#include "kv_transfer/transfer_session.h"

#include <string>

#include "common/logging.h"

namespace tandem {

std::string_view SendStateName(SendState s) {
  switch (s) {
    case SendState::kAwaitingReservation: return "AWAITING_RESERVATION";
    case SendState::kSending: return "SENDING";
    case SendState::kFlushing: return "FLUSHING";
    case SendState::kKvReady: return "KV_READY";
    case SendState::kDraining: return "DRAINING";
    case SendState::kDone: return "DONE";
    case SendState::kAborted: return "ABORTED";
    case SendState::kTimedOut: return "TIMED_OUT";
    case SendState::kFailed: return "FAILED";
  }
  return "?";
}

std::string_view ReceiveStateName(ReceiveState s) {
  switch (s) {
    case ReceiveState::kReserved: return "RESERVED";
    case ReceiveState::kAwaitingKv: return "AWAITING_KV";
    case ReceiveState::kDraining: return "DRAINING";
    case ReceiveState::kAdmitted: return "ADMITTED";
    case ReceiveState::kAborted: return "ABORTED";
    case ReceiveState::kTimedOut: return "TIMED_OUT";
    case ReceiveState::kPeerFailed: return "PEER_FAILED";
    case ReceiveState::kFailed: return "FAILED";
  }
  return "?";
}

bool IsTerminal(SendState s) {
  return s == SendState::kDone || s == SendState::kAborted || s == SendState::kTimedOut ||
         s == SendState::kFailed;
}

bool IsTerminal(ReceiveState s) {
  return s == ReceiveState::kAdmitted || s == ReceiveState::kAborted ||
         s == ReceiveState::kTimedOut || s == ReceiveState::kPeerFailed ||
         s == ReceiveState::kFailed;
}

// ---------------------------------------------------------------------------------------------
// KvSendSession

KvSendSession::KvSendSession(uint64_t request_id, Transport& transport,
                             const KvLayout& local_layout, std::vector<int> src_block_ids,
                             BlockReleaser release, SessionClock::time_point now,
                             SessionOptions options)
    : request_id_(request_id),
      transport_(transport),
      local_layout_(local_layout),
      src_block_ids_(std::move(src_block_ids)),
      release_(std::move(release)),
      options_(options),
      deadline_(now + options.transfer_timeout) {
  Enter(SendState::kAwaitingReservation, now);
}

KvSendSession::~KvSendSession() {
  if (!IsTerminal(state_)) {
    GetLogger("kv_transfer")
        ->warn("request {}: send session destroyed in state {}", request_id_,
               SendStateName(state_));
  }
  for (TransferId id : in_flight_) transport_.Release(id);
  if (flush_posted_) transport_.Release(flush_id_);
  ReleaseBlocks();
}

void KvSendSession::Enter(SendState s, SessionClock::time_point now) {
  state_ = s;
  history_.emplace_back(s, now);
}

void KvSendSession::ReleaseBlocks() {
  if (released_) return;
  released_ = true;
  if (release_) release_(src_block_ids_);
}

SessionAction KvSendSession::OnReservation(const KvReservation& reservation, PeerId peer,
                                           SessionClock::time_point now) {
  if (state_ != SendState::kAwaitingReservation) return SessionAction::kNone;  // late/duplicate
  // From here on the decode node holds blocks for us, so any failure must be reported to it.
  reserved_ = true;
  peer_ = peer;
  const std::string who = "request " + std::to_string(request_id_) + ": reservation: ";
  if (reservation.request_id != request_id_) {
    return Fail(SendState::kFailed,
                InvalidArgumentError(who + "for request " +
                                     std::to_string(reservation.request_id)),
                now);
  }
  if (reservation.layout_hash != local_layout_.compatibility_hash()) {
    return Fail(SendState::kFailed,
                FailedPreconditionError(who + "decode pool layout hash " +
                                        std::to_string(reservation.layout_hash) +
                                        " differs from ours " +
                                        std::to_string(local_layout_.compatibility_hash())),
                now);
  }
  remote_layout_ = local_layout_;
  remote_layout_.num_blocks = reservation.pool_num_blocks;
  const int skip = reservation.skip_blocks;
  if (skip < 0 || skip >= static_cast<int>(src_block_ids_.size()) ||
      skip > static_cast<int>(reservation.block_ids.size())) {
    return Fail(SendState::kFailed,
                InvalidArgumentError(who + "skips " + std::to_string(skip) + " of " +
                                     std::to_string(src_block_ids_.size()) + " blocks"),
                now);
  }
  skip_blocks_ = skip;  // released with the rest at the end, just never sent
  dst_block_ids_.assign(reservation.block_ids.begin() + skip, reservation.block_ids.end());
  // Validates sizes and every id once; each layer reuses the same ids.
  auto check = BuildDescriptors(local_layout_, remote_layout_, 0, sent_blocks(), dst_block_ids_);
  if (!check.ok()) return Fail(SendState::kFailed, check.status().WithContext(who), now);
  Enter(SendState::kSending, now);
  return PostReadyLayers(now);
}

SessionAction KvSendSession::PostReadyLayers(SessionClock::time_point now) {
  while (layers_posted_ < layers_computed_) {
    auto descriptors = BuildDescriptors(local_layout_, remote_layout_, layers_posted_,
                                        sent_blocks(), dst_block_ids_);
    if (!descriptors.ok()) return Fail(SendState::kFailed, descriptors.status(), now);
    auto id = transport_.PostPut(peer_, *descriptors);
    if (!id.ok()) {
      return Fail(SendState::kFailed,
                  id.status().WithContext("posting layer " + std::to_string(layers_posted_)), now);
    }
    in_flight_.push_back(*id);
    descriptors_posted_ += descriptors->size();
    bytes_posted_ += DescriptorBytes(*descriptors);
    ++layers_posted_;
  }
  if (layers_posted_ == local_layout_.num_layers && !flush_posted_) {
    auto id = transport_.PostFlush(peer_);
    if (!id.ok()) return Fail(SendState::kFailed, id.status().WithContext("posting flush"), now);
    flush_id_ = *id;
    flush_posted_ = true;
    Enter(SendState::kFlushing, now);
  }
  return SessionAction::kNone;
}

SessionAction KvSendSession::OnLayerComputed(int layer, SessionClock::time_point now) {
  if (state_ != SendState::kAwaitingReservation && state_ != SendState::kSending) {
    return SessionAction::kNone;
  }
  if (layer != layers_computed_ || layer >= local_layout_.num_layers) {
    return Fail(SendState::kFailed,
                InvalidArgumentError("request " + std::to_string(request_id_) + ": layer " +
                                     std::to_string(layer) + " computed, expected " +
                                     std::to_string(layers_computed_)),
                now);
  }
  ++layers_computed_;
  if (state_ != SendState::kSending) return SessionAction::kNone;
  const SessionAction action = PostReadyLayers(now);
  // The engine calls this between layers and does not poll until the forward pass is over;
  // one Progress() here lets transports whose puts do not complete inside PostPut (UCX over
  // TCP: what did not fit the socket buffer waits in UCX's pending queue) push this layer
  // while the next ones compute, instead of sending everything after the last layer.
  if (!IsTerminal(state_) && state_ != SendState::kDraining) transport_.Progress();
  return action;
}

SessionAction KvSendSession::Poll(SessionClock::time_point now) {
  if (IsTerminal(state_) || state_ == SendState::kKvReady) return SessionAction::kNone;
  const bool draining = state_ == SendState::kDraining;
  // Retire finished puts in order of posting; keep the rest.
  std::vector<TransferId> still;
  Status error;
  for (TransferId id : in_flight_) {
    auto done = transport_.Poll(id);
    if (done.ok() && !*done) {
      still.push_back(id);
      continue;
    }
    if (!done.ok() && error.ok()) error = done.status();
    transport_.Release(id);
  }
  in_flight_ = std::move(still);
  bool flush_done = false;
  if (flush_posted_) {
    auto done = transport_.Poll(flush_id_);
    flush_done = !done.ok() || *done;
    if (!done.ok() && error.ok()) error = done.status();
    if (flush_done) {
      transport_.Release(flush_id_);
      flush_posted_ = false;
    }
  }

  if (draining) {
    // Errors now only mean the write will not happen; what matters is that nothing is pending.
    if ((in_flight_.empty() && !flush_posted_) || now >= drain_deadline_) return Finish(now);
    return SessionAction::kNone;
  }
  if (!error.ok()) return Fail(SendState::kFailed, error, now);
  // The flush may complete in an earlier Poll than the last put: each transport Poll progresses
  // the transport, so the put checked first can complete in the flush's Poll (UCX over tcp
  // runs both callbacks in one progress call). Hence "no flush outstanding", not this poll's
  // flush_done: a flush in kFlushing is only ever cleared by completing (errors fail above).
  if (state_ == SendState::kFlushing && !flush_posted_ && in_flight_.empty()) {
    ReleaseBlocks();  // every byte is visible at the peer; ours are free
    Enter(SendState::kKvReady, now);
    return SessionAction::kSendKvReady;
  }
  if (now >= deadline_) {
    return Fail(SendState::kTimedOut,
                DeadlineExceededError("request " + std::to_string(request_id_) +
                                      ": KV transfer not done within " +
                                      std::to_string(options_.transfer_timeout.count()) +
                                      " ms (state " + std::string(SendStateName(state_)) +
                                      ", " + std::to_string(in_flight_.size()) + " puts" +
                                      (flush_posted_ ? " and a flush" : "") + " outstanding)"),
                now);
  }
  return SessionAction::kNone;
}

void KvSendSession::MarkNotified(SessionClock::time_point now) {
  if (state_ == SendState::kKvReady) Enter(SendState::kDone, now);
}

SessionAction KvSendSession::Abort(Status reason, SessionClock::time_point now) {
  return Fail(SendState::kAborted, std::move(reason), now);
}

SessionAction KvSendSession::Fail(SendState terminal, Status reason,
                                  SessionClock::time_point now) {
  if (IsTerminal(state_) || state_ == SendState::kDraining) return SessionAction::kNone;
  status_ = std::move(reason);
  GetLogger("kv_transfer")
      ->debug("request {}: send session {} -> {}: {}", request_id_, SendStateName(state_),
              SendStateName(terminal), status_.ToString());
  drain_target_ = terminal;
  if (!in_flight_.empty() || flush_posted_) {
    drain_deadline_ = now + options_.drain_timeout;
    Enter(SendState::kDraining, now);
    return SessionAction::kNone;
  }
  return Finish(now);
}

SessionAction KvSendSession::Finish(SessionClock::time_point now) {
  if (!in_flight_.empty() || flush_posted_) {
    GetLogger("kv_transfer")
        ->warn("request {}: drain timeout with {} transfers in flight", request_id_,
               in_flight_.size() + (flush_posted_ ? 1 : 0));
  }
  for (TransferId id : in_flight_) transport_.Release(id);
  in_flight_.clear();
  if (flush_posted_) transport_.Release(flush_id_);
  flush_posted_ = false;
  Enter(drain_target_, now);
  ReleaseBlocks();
  // Sent only now, when none of our writes is in flight, so the receiver may free at once.
  return reserved_ ? SessionAction::kSendAbort : SessionAction::kNone;
}

KvReadyNotice KvSendSession::ready_notice() const {
  // Every block of the reservation holds the request's KV now: the sent ones and the skipped.
  return KvReadyNotice{request_id_, local_layout_.compatibility_hash(),
                       static_cast<int>(src_block_ids_.size()), bytes_posted_};
}

// ---------------------------------------------------------------------------------------------
// KvReceiveSession

KvReceiveSession::KvReceiveSession(uint64_t request_id, const KvLayout& local_layout,
                                   std::vector<int> reserved_block_ids, BlockReleaser release,
                                   SessionClock::time_point now, SessionOptions options)
    : request_id_(request_id),
      local_layout_(local_layout),
      block_ids_(std::move(reserved_block_ids)),
      release_(std::move(release)),
      options_(options),
      deadline_(now + options.transfer_timeout) {
  Enter(ReceiveState::kReserved, now);
}

KvReceiveSession::~KvReceiveSession() {
  if (!IsTerminal(state_)) {
    GetLogger("kv_transfer")
        ->warn("request {}: receive session destroyed in state {}", request_id_,
               ReceiveStateName(state_));
  }
  ReleaseBlocks();
}

void KvReceiveSession::Enter(ReceiveState s, SessionClock::time_point now) {
  state_ = s;
  history_.emplace_back(s, now);
}

void KvReceiveSession::ReleaseBlocks() {
  if (released_) return;
  released_ = true;
  if (release_) release_(block_ids_);
}

KvReservation KvReceiveSession::reservation() const {
  return KvReservation{request_id_, local_layout_.compatibility_hash(), local_layout_.num_blocks,
                       block_ids_};
}

void KvReceiveSession::MarkReservationSent(SessionClock::time_point now) {
  if (state_ == ReceiveState::kReserved) Enter(ReceiveState::kAwaitingKv, now);
}

SessionAction KvReceiveSession::GiveUp(ReceiveState terminal, Status reason,
                                       SessionClock::time_point now) {
  if (IsTerminal(state_) || state_ == ReceiveState::kDraining) return SessionAction::kNone;
  status_ = std::move(reason);
  if (state_ == ReceiveState::kReserved) {
    // The sender never learnt the block ids, so nothing can be writing into them.
    Enter(terminal, now);
    ReleaseBlocks();
    return SessionAction::kNone;
  }
  drain_target_ = terminal;
  drain_deadline_ = now + options_.drain_timeout;
  Enter(ReceiveState::kDraining, now);
  // A failed peer cannot hear us; a live one must stop writing and confirm.
  return terminal == ReceiveState::kPeerFailed ? SessionAction::kNone : SessionAction::kSendAbort;
}

SessionAction KvReceiveSession::OnKvReady(const KvReadyNotice& notice,
                                          SessionClock::time_point now) {
  if (state_ == ReceiveState::kDraining) {
    // The sender flushed everything: nothing more can land, so the drain is over.
    Enter(drain_target_, now);
    ReleaseBlocks();
    return SessionAction::kNone;
  }
  if (state_ != ReceiveState::kAwaitingKv) return SessionAction::kNone;
  const std::string who = "request " + std::to_string(request_id_) + ": KV ready: ";
  Status bad;
  if (notice.request_id != request_id_) {
    bad = InvalidArgumentError(who + "for request " + std::to_string(notice.request_id));
  } else if (notice.layout_hash != local_layout_.compatibility_hash()) {
    bad = FailedPreconditionError(who + "layout hash " + std::to_string(notice.layout_hash) +
                                  " differs from ours " +
                                  std::to_string(local_layout_.compatibility_hash()));
  } else if (notice.num_blocks != static_cast<int>(block_ids_.size())) {
    bad = DataLossError(who + std::to_string(notice.num_blocks) + " blocks sent, " +
                        std::to_string(block_ids_.size()) + " reserved");
  }
  if (!bad.ok()) {
    // The sender has flushed and is done, so the blocks can go back at once.
    status_ = bad;
    Enter(ReceiveState::kFailed, now);
    ReleaseBlocks();
    return SessionAction::kNone;
  }
  Enter(ReceiveState::kAdmitted, now);
  return SessionAction::kNone;
}

SessionAction KvReceiveSession::OnPeerAborted(SessionClock::time_point now) {
  if (IsTerminal(state_)) return SessionAction::kNone;
  const ReceiveState terminal =
      state_ == ReceiveState::kDraining ? drain_target_ : ReceiveState::kAborted;
  if (status_.ok()) status_ = AbortedError("request " + std::to_string(request_id_) +
                                           ": the prefill node aborted the transfer");
  Enter(terminal, now);
  ReleaseBlocks();
  return SessionAction::kNone;
}

SessionAction KvReceiveSession::OnPeerFailed(Status reason, SessionClock::time_point now) {
  return GiveUp(ReceiveState::kPeerFailed, std::move(reason), now);
}

SessionAction KvReceiveSession::Abort(Status reason, SessionClock::time_point now) {
  return GiveUp(ReceiveState::kAborted, std::move(reason), now);
}

SessionAction KvReceiveSession::Poll(SessionClock::time_point now) {
  if (state_ == ReceiveState::kDraining) {
    if (now >= drain_deadline_) {
      Enter(drain_target_, now);
      ReleaseBlocks();
    }
    return SessionAction::kNone;
  }
  if ((state_ == ReceiveState::kReserved || state_ == ReceiveState::kAwaitingKv) &&
      now >= deadline_) {
    return GiveUp(ReceiveState::kTimedOut,
                  DeadlineExceededError("request " + std::to_string(request_id_) +
                                        ": KV not ready within " +
                                        std::to_string(options_.transfer_timeout.count()) + " ms"),
                  now);
  }
  return SessionAction::kNone;
}

std::vector<int> KvReceiveSession::TakeBlocks() {
  if (state_ != ReceiveState::kAdmitted || released_) return {};
  released_ = true;
  return std::move(block_ids_);
}

}  // namespace tandem
