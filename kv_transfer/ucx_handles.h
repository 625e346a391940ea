// RAII owners of UCX handles, internal to ucx_transport.cc (callers never see UCX types).
// Destruction order matters and is the reverse of creation: rkeys and endpoints before the
// worker, memory handles before the context; UcxTransport's members are declared accordingly.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <ucp/api/ucp.h>

#include "common/status.h"

namespace tandem::ucx {

// "what: UCS_ERR_...description" as a Status; UCS_OK maps to Ok.
inline Status FromUcs(ucs_status_t status, const std::string& what) {
  if (status == UCS_OK) return Status::Ok();
  const std::string message = what + ": " + ucs_status_string(status);
  switch (status) {
    case UCS_ERR_TIMED_OUT:
      return DeadlineExceededError(message);
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_EXCEEDS_LIMIT:
      return ResourceExhaustedError(message);
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_NO_DEVICE:
      return UnavailableError(message);
    case UCS_ERR_CANCELED:
      return AbortedError(message);
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
      return InvalidArgumentError(message);
    case UCS_ERR_UNSUPPORTED:
      return UnimplementedError(message);
    default:
      return InternalError(message);
  }
}

struct ConfigDeleter {
  void operator()(ucp_config_t* c) const { ucp_config_release(c); }
};
using UcxConfig = std::unique_ptr<ucp_config_t, ConfigDeleter>;

struct ContextDeleter {
  void operator()(ucp_context_h c) const { ucp_cleanup(c); }
};
using UcxContext = std::unique_ptr<std::remove_pointer_t<ucp_context_h>, ContextDeleter>;

struct WorkerDeleter {
  void operator()(ucp_worker_h w) const { ucp_worker_destroy(w); }
};
using UcxWorker = std::unique_ptr<std::remove_pointer_t<ucp_worker_h>, WorkerDeleter>;

struct RkeyDeleter {
  void operator()(ucp_rkey_h r) const { ucp_rkey_destroy(r); }
};
using UcxRkey = std::unique_ptr<std::remove_pointer_t<ucp_rkey_h>, RkeyDeleter>;

// A ucp_mem_map registration; unmapped with the context it was made in.
class UcxMemory {
 public:
  UcxMemory() = default;
  UcxMemory(ucp_context_h context, ucp_mem_h memh) : context_(context), memh_(memh) {}
  ~UcxMemory() { Reset(); }
  UcxMemory(UcxMemory&& o) noexcept { *this = std::move(o); }
  UcxMemory& operator=(UcxMemory&& o) noexcept {
    if (this != &o) {
      Reset();
      context_ = o.context_;
      memh_ = o.memh_;
      o.memh_ = nullptr;
    }
    return *this;
  }
  ucp_mem_h get() const { return memh_; }
  void Reset() {
    if (memh_ != nullptr) ucp_mem_unmap(context_, memh_);
    memh_ = nullptr;
  }

 private:
  ucp_context_h context_ = nullptr;
  ucp_mem_h memh_ = nullptr;
};

// Completion flag for operations the transport waits on itself (endpoint close).
struct WaitFlag {
  bool done = false;
  ucs_status_t status = UCS_OK;
};

inline void OnWaitFlagComplete(void* request, ucs_status_t status, void* user_data) {
  auto* flag = static_cast<WaitFlag*>(user_data);
  flag->done = true;
  flag->status = status;
  ucp_request_free(request);
}

// Issues `post(param)` (a *_nbx call) and progresses `worker` until it completes or `timeout`
// passes. On timeout the request is handed back with ucp_request_free, after which UCX never
// calls the callback (so `flag` on our stack is safe) and the worker can still be destroyed.
template <typename PostFn>
Status PostAndWait(ucp_worker_h worker, PostFn post, std::chrono::milliseconds timeout,
                   const std::string& what) {
  WaitFlag flag;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = OnWaitFlagComplete;
  param.user_data = &flag;
  ucs_status_ptr_t request = post(param);
  if (request == nullptr) return Status::Ok();
  if (UCS_PTR_IS_ERR(request)) return FromUcs(UCS_PTR_STATUS(request), what);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!flag.done) {
    ucp_worker_progress(worker);
    if (!flag.done && std::chrono::steady_clock::now() >= deadline) {
      ucp_request_free(request);
      return DeadlineExceededError(what + ": not complete after " +
                                   std::to_string(timeout.count()) + " ms");
    }
  }
  return FromUcs(flag.status, what);
}

// Closes an endpoint, gracefully (flushing it) unless `force` (required after a peer failure).
// Bounded by `timeout`; after a timeout the endpoint is released with the worker.
inline Status CloseEndpoint(ucp_worker_h worker, ucp_ep_h ep, bool force,
                            std::chrono::milliseconds timeout) {
  return PostAndWait(
      worker,
      [&](ucp_request_param_t& param) {
        if (force) {
          param.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
          param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        }
        return ucp_ep_close_nbx(ep, &param);
      },
      timeout, force ? "ucp_ep_close_nbx(force)" : "ucp_ep_close_nbx");
}

}  // namespace tandem::ucx
