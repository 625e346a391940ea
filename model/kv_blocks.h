// Block arithmetic of the paged KV cache, with no dependency on the cache itself: the router
// (which links no model code beyond model/'s spec target) counts blocks with the same function
// as the pools that hand them out.
#pragma once

#include <cstdint>

namespace tandem {

// Blocks needed to hold `num_tokens` tokens. REQUIRES: block_size > 0.
inline int32_t BlocksForTokens(int64_t num_tokens, int32_t block_size) {
  return static_cast<int32_t>((num_tokens + block_size - 1) / block_size);
}

}  // namespace tandem
