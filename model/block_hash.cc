#include "model/block_hash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace tandem {
namespace {

BlockHash Truncate(const unsigned char* digest) {
  BlockHash h;
  std::memcpy(&h.hi, digest, 8);
  std::memcpy(&h.lo, digest + 8, 8);
  return h;
}

BlockHash Sha256(const void* data, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest fails only on allocation failure; a zero hash then matches nothing cached
  // (roots and chains never produce it in practice) and the token comparison guards the rest.
  if (EVP_Digest(data, size, digest, &len, EVP_sha256(), nullptr) != 1 || len < 16) return BlockHash{};
  return Truncate(digest);
}

}  // namespace

BlockHash PrefixRoot(std::string_view cache_salt) {
  static constexpr std::string_view kDomain = "tandem-prefix-cache-v1\n";
  std::vector<char> buf(kDomain.begin(), kDomain.end());
  buf.insert(buf.end(), cache_salt.begin(), cache_salt.end());
  return Sha256(buf.data(), buf.size());
}

BlockHash ChainBlockHash(const BlockHash& parent, std::span<const int32_t> tokens) {
  // parent (16 bytes) then the token ids as little-endian int32 (the machine's order: x86/arm).
  unsigned char stack[16 + 64 * sizeof(int32_t)];
  std::vector<unsigned char> heap;
  const size_t size = 16 + tokens.size_bytes();
  unsigned char* buf = stack;
  if (size > sizeof(stack)) {
    heap.resize(size);
    buf = heap.data();
  }
  std::memcpy(buf, &parent.hi, 8);
  std::memcpy(buf + 8, &parent.lo, 8);
  if (!tokens.empty()) std::memcpy(buf + 16, tokens.data(), tokens.size_bytes());
  return Sha256(buf, size);
}

std::vector<BlockHash> ChainBlockHashes(const BlockHash& root, std::span<const int32_t> tokens, int32_t block_size,
                                        int32_t max_blocks) {
  std::vector<BlockHash> out;
  if (block_size <= 0) return out;
  const size_t bs = static_cast<size_t>(block_size);
  const size_t n = std::min(tokens.size() / bs, static_cast<size_t>(std::max(max_blocks, 0)));
  BlockHash h = root;
  for (size_t i = 0; i < n; ++i) out.push_back(h = ChainBlockHash(h, tokens.subspan(i * bs, bs)));
  return out;
}

void AppendBlockHashes(std::span<const BlockHash> hashes, std::string* out) {
  const size_t at = out->size();
  out->resize(at + hashes.size() * 16);
  for (size_t i = 0; i < hashes.size(); ++i) {
    std::memcpy(out->data() + at + i * 16, &hashes[i].hi, 8);
    std::memcpy(out->data() + at + i * 16 + 8, &hashes[i].lo, 8);
  }
}

std::vector<BlockHash> ParseBlockHashes(std::string_view bytes) {
  std::vector<BlockHash> out(bytes.size() / 16);
  for (size_t i = 0; i < out.size(); ++i) {
    std::memcpy(&out[i].hi, bytes.data() + i * 16, 8);
    std::memcpy(&out[i].lo, bytes.data() + i * 16 + 8, 8);
  }
  return out;
}

}  // namespace tandem
