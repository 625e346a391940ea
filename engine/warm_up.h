// One throw-away request through the real path before a server takes traffic: it touches the
// memory-mapped weights (page faults), sizes the backend's scratch buffers and the OpenMP team,
// so the first client request does not pay for them (on the demo cluster the first TTFT was
// 5-10x the later ones). Frees everything it used.
#pragma once

#include "common/status.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tandem {

// Prefills `prompt_tokens` tokens and decodes one (greedy) in a private Engine over `cache`.
// REQUIRES: nothing else uses `cache` or `transformer` meanwhile.
Status WarmUp(Transformer& transformer, KvCache& cache, int prompt_tokens = 16);

}  // namespace tandem
