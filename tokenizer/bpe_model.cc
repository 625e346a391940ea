#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "common/logging.h"
#include "tokenizer/unicode_util.h"

namespace tandem::tokenizer {

Result<std::unique_ptr<BpeModel>> BpeModel::FromJson(const Json& model) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  const Json* vocab = FindField(model, "vocab");
  if (vocab == nullptr) return FieldError("model.vocab", "missing");
  if (!vocab->is_object()) return FieldError("model.vocab", "expected an object {token: id}");
  m->vocab_.reserve(vocab->size());
  TokenId max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      return FieldError("model.vocab[\"" + it.key() + "\"]", "expected a non-negative integer id");
    }
    const auto id = static_cast<TokenId>(it.value().get<int64_t>());
    m->vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  m->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  m->has_token_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : m->vocab_) {
    m->id_to_token_[static_cast<size_t>(id)] = token;
    m->has_token_[static_cast<size_t>(id)] = true;
  }

  ASSIGN_OR_RETURN(m->continuing_subword_prefix_,
                   GetStringOr(model, "continuing_subword_prefix", "model", ""));
  ASSIGN_OR_RETURN(m->end_of_word_suffix_, GetStringOr(model, "end_of_word_suffix", "model", ""));
  ASSIGN_OR_RETURN(m->fuse_unk_, GetBoolOr(model, "fuse_unk", "model", false));
  ASSIGN_OR_RETURN(m->byte_fallback_, GetBoolOr(model, "byte_fallback", "model", false));
  ASSIGN_OR_RETURN(m->ignore_merges_, GetBoolOr(model, "ignore_merges", "model", false));
  if (const Json* dropout = FindField(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return FieldError("model.dropout", "BPE dropout is not supported (encoding must be deterministic)");
    }
  }
  if (const Json* unk = FindField(model, "unk_token")) {
    if (!unk->is_string()) return FieldError("model.unk_token", "expected a string");
    auto it = m->vocab_.find(unk->get<std::string>());
    if (it == m->vocab_.end()) {
      // The reference loads such files and only fails when a character needs the unk token;
      // byte-level vocabularies never do, so this is not an error here. Such characters are
      // dropped instead.
      GetLogger("tokenizer")->warn("model.unk_token '{}' is not in model.vocab",
                                   unk->get<std::string>());
    } else {
      m->unk_id_ = it->second;
    }
  }

  ASSIGN_OR_RETURN(const Json* merges, GetArray(model, "merges", "model"));
  m->merges_.reserve(merges->size());
  const size_t prefix_len = m->continuing_subword_prefix_.size();
  std::string a, b;
  for (size_t i = 0; i < merges->size(); ++i) {
    const Json& entry = (*merges)[i];
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    if (entry.is_string()) {
      const std::string& s = entry.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) return FieldError(path, "expected \"left right\", got '" + s + "'");
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      return FieldError(path, "expected \"left right\" or [\"left\", \"right\"]");
    }
    auto ia = m->vocab_.find(a);
    if (ia == m->vocab_.end()) return FieldError(path, "token '" + a + "' is not in model.vocab");
    auto ib = m->vocab_.find(b);
    if (ib == m->vocab_.end()) return FieldError(path, "token '" + b + "' is not in model.vocab");
    if (b.size() < prefix_len) return FieldError(path, "token '" + b + "' lacks the subword prefix");
    const std::string merged = a + b.substr(prefix_len);
    auto im = m->vocab_.find(merged);
    if (im == m->vocab_.end()) {
      return FieldError(path, "merged token '" + merged + "' is not in model.vocab");
    }
    const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    // Like the reference's HashMap collect: a repeated pair keeps its last rank.
    m->merges_[key] = {static_cast<uint32_t>(i), im->second};
  }

  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    auto it = m->vocab_.find(std::string_view(name));
    m->byte_fallback_ids_[static_cast<size_t>(byte)] = it == m->vocab_.end() ? -1 : it->second;
  }
  m->small_char_ids_.assign(0x800, -1);
  for (const auto& [token, id] : m->vocab_) {
    if (token.empty() || !IsValidUtf8(token)) continue;
    size_t pos = 0;
    const char32_t cp = NextCodePoint(token, pos);
    if (pos == token.size() && cp < 0x800) m->small_char_ids_[cp] = id;
  }
  return m;
}

std::optional<TokenId> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_token_[static_cast<size_t>(id)]) {
    return nullptr;
  }
  return &id_to_token_[static_cast<size_t>(id)];
}

void BpeModel::Tokenize(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  MergeWord(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheCapacity) {
      cache_.emplace(std::string(word), std::vector<TokenId>(out.begin() + static_cast<ptrdiff_t>(before), out.end()));
    }
  }
}

namespace {

struct Symbol {
  TokenId id;
  int prev;
  int next;
  size_t len;  // bytes of the word it covers; 0 once merged into its left neighbour
};

struct MergeCandidate {
  uint32_t rank;
  int pos;
  TokenId new_id;
  // std::priority_queue pops the largest: "larger" = lower rank, then lower position.
  bool operator<(const MergeCandidate& o) const {
    if (rank != o.rank) return rank > o.rank;
    return pos > o.pos;
  }
};

void AddSymbol(std::vector<Symbol>& symbols, TokenId id, size_t len) {
  const int n = static_cast<int>(symbols.size());
  if (n > 0) symbols.back().next = n;
  symbols.push_back({id, n - 1, -1, len});
}

}  // namespace

void BpeModel::MergeWord(std::string_view w, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  // Pending (possibly fused) unknown: id and byte length; unk_len == 0 means none.
  TokenId unk_id = -1;
  size_t unk_len = 0;
  const bool plain = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty();
  std::string s;
  size_t i = 0;
  while (i < w.size()) {
    const size_t start = i;
    const char32_t cp = NextCodePoint(w, i);
    const size_t byte_len = i - start;
    const bool is_first = start == 0, is_last = i >= w.size();
    TokenId id = -1;
    if (plain && cp < 0x800) {
      id = small_char_ids_[cp];
      if (id < 0) s.assign(w.substr(start, byte_len));
    } else {
      s.clear();
      if (!is_first) s += continuing_subword_prefix_;
      s.append(w.substr(start, byte_len));
      if (is_last) s += end_of_word_suffix_;
      auto it = vocab_.find(s);
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      if (unk_len > 0) {
        AddSymbol(symbols, unk_id, unk_len);
        unk_len = 0;
      }
      AddSymbol(symbols, id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) AddSymbol(symbols, byte_fallback_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (unk_len > 0 && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_len > 0) AddSymbol(symbols, unk_id, unk_len);
        unk_id = *unk_id_;
        unk_len = byte_len;
      }
    }
  }
  if (unk_len > 0) AddSymbol(symbols, unk_id, unk_len);

  thread_local std::vector<MergeCandidate> heap_storage;
  heap_storage.clear();
  std::priority_queue<MergeCandidate> queue(std::less<MergeCandidate>(), std::move(heap_storage));
  auto find_merge = [&](TokenId a, TokenId b) -> const std::pair<uint32_t, TokenId>* {
    auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const auto* m = find_merge(symbols[k].id, symbols[k + 1].id)) {
      queue.push({m->first, static_cast<int>(k), m->second});
    }
  }
  while (!queue.empty()) {
    const MergeCandidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[static_cast<size_t>(top.pos)];
    if (cur.len == 0 || cur.next == -1) continue;
    const int next_pos = cur.next;
    const Symbol right = symbols[static_cast<size_t>(next_pos)];
    const auto* m = find_merge(cur.id, right.id);
    if (m == nullptr || m->second != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[static_cast<size_t>(next_pos)].len = 0;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (cur.prev >= 0) {
      if (const auto* pm = find_merge(symbols[static_cast<size_t>(cur.prev)].id, cur.id)) {
        queue.push({pm->first, cur.prev, pm->second});
      }
    }
    if (cur.next >= 0) {
      if (const auto* nm = find_merge(cur.id, symbols[static_cast<size_t>(cur.next)].id)) {
        queue.push({nm->first, top.pos, nm->second});
      }
    }
  }
  for (const Symbol& sym : symbols) {
    if (sym.len != 0) out.push_back(sym.id);
  }
}

}  // namespace tandem::tokenizer
