#include "tests/nodes/random_envelope.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tandem::testing {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

namespace {

bool EndsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool IsTokenField(const FieldDescriptor* f) { return f->name().find("token") != std::string::npos; }

}  // namespace

RandomEnvelopeMaker::RandomEnvelopeMaker(uint64_t seed, RandomEnvelopeOptions options)
    : rng_(seed), options_(std::move(options)) {}

bool RandomEnvelopeMaker::Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

int64_t RandomEnvelopeMaker::Int(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
}

int64_t RandomEnvelopeMaker::EdgeInt(bool is_unsigned, int bits) {
  const int64_t max = bits == 32 ? (is_unsigned ? int64_t{std::numeric_limits<uint32_t>::max()}
                                                : int64_t{std::numeric_limits<int32_t>::max()})
                                 : std::numeric_limits<int64_t>::max();
  const int64_t min =
      is_unsigned ? 0 : (bits == 32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min());
  switch (Int(0, 6)) {
    case 0:
      return 0;
    case 1:
      return is_unsigned ? max : -1;
    case 2:
      return max;
    case 3:
      return min;
    case 4:
      return Int(0, 1 << 20);
    case 5:
      return max - Int(0, 3);
    default:
      return Int(is_unsigned ? 0 : -1000, 1000);
  }
}

double RandomEnvelopeMaker::EdgeDouble() {
  switch (Int(0, 8)) {
    case 0:
      return 0.0;
    case 1:
      return -1.0;
    case 2:
      return std::numeric_limits<double>::quiet_NaN();
    case 3:
      return std::numeric_limits<double>::infinity();
    case 4:
      return -std::numeric_limits<double>::infinity();
    case 5:
      return 1e30;
    case 6:
      return std::numeric_limits<double>::denorm_min();
    case 7:
      return -1e-30;
    default:
      return std::uniform_real_distribution<double>(-10, 10)(rng_);
  }
}

std::string RandomEnvelopeMaker::String(const FieldDescriptor* f) {
  const std::string& name = f->name();
  if (EndsWith(name, "request_id") && !options_.request_ids.empty() && Chance(0.85)) return Pick(options_.request_ids);
  if ((EndsWith(name, "node_id") || name == "router_id") && !options_.node_ids.empty() && Chance(0.7)) {
    return Pick(options_.node_ids);
  }
  std::string s;
  switch (Int(0, 4)) {
    case 0:
      return s;
    case 1:  // long
      s.assign(static_cast<size_t>(Int(1000, 6000)), static_cast<char>('a' + Int(0, 25)));
      return s;
    case 2:  // raw bytes, not UTF-8 (bytes fields take them; string fields would be refused by the parser)
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        for (int64_t i = Int(1, 64); i > 0; --i) s.push_back(static_cast<char>(Int(0, 255)));
        return s;
      }
      [[fallthrough]];
    default:
      for (int64_t i = Int(1, 24); i > 0; --i) s.push_back(static_cast<char>(Int(0x20, 0x7e)));
      return s;
  }
}

void RandomEnvelopeMaker::FillField(Message* m, const FieldDescriptor* f, int depth) {
  const Reflection* r = m->GetReflection();
  const bool repeated = f->is_repeated();
  const int64_t count = repeated ? Int(0, IsTokenField(f) ? 8 * options_.max_repeated : options_.max_repeated) : 1;
  for (int64_t i = 0; i < count; ++i) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        const bool is_unsigned =
            f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 || f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
        const int bits =
            f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 || f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ? 32
                                                                                                                : 64;
        int64_t v = 0;
        if (IsTokenField(f) && options_.vocab_size > 0 && Chance(0.9)) {
          v = Int(0, options_.vocab_size - 1);
        } else {
          v = Chance(0.5) ? Int(0, 64) : EdgeInt(is_unsigned, bits);
        }
        switch (f->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32:
            repeated ? r->AddInt32(m, f, static_cast<int32_t>(v)) : r->SetInt32(m, f, static_cast<int32_t>(v));
            break;
          case FieldDescriptor::CPPTYPE_INT64:
            repeated ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
            break;
          case FieldDescriptor::CPPTYPE_UINT32:
            repeated ? r->AddUInt32(m, f, static_cast<uint32_t>(v)) : r->SetUInt32(m, f, static_cast<uint32_t>(v));
            break;
          default:
            repeated ? r->AddUInt64(m, f, static_cast<uint64_t>(v)) : r->SetUInt64(m, f, static_cast<uint64_t>(v));
            break;
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        const double v = Chance(0.5) ? std::uniform_real_distribution<double>(0, 2)(rng_) : EdgeDouble();
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          repeated ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
        } else {
          repeated ? r->AddFloat(m, f, static_cast<float>(v)) : r->SetFloat(m, f, static_cast<float>(v));
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        repeated ? r->AddBool(m, f, Chance(0.5)) : r->SetBool(m, f, Chance(0.5));
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        // Mostly a declared value; sometimes one no peer of ours would send (proto3 keeps it).
        const auto* e = f->enum_type();
        const int v = Chance(0.9) ? e->value(static_cast<int>(Int(0, e->value_count() - 1)))->number()
                                  : static_cast<int>(Int(-5, 1000));
        repeated ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        repeated ? r->AddString(m, f, String(f)) : r->SetString(m, f, String(f));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 4) Fill(repeated ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
        break;
    }
  }
}

void RandomEnvelopeMaker::Fill(Message* m, int depth) {
  const auto* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!f->is_repeated() && !Chance(0.8)) continue;
    FillField(m, f, depth);
  }
}

std::string RandomEnvelopeMaker::Pick(const std::vector<std::string>& pool) {
  return pool.empty() ? "x" : pool[static_cast<size_t>(Int(0, static_cast<int64_t>(pool.size()) - 1))];
}

int32_t RandomEnvelopeMaker::Token() { return static_cast<int32_t>(Int(0, std::max(1, options_.vocab_size) - 1)); }

proto::SamplingParams RandomEnvelopeMaker::PlausibleSampling() {
  proto::SamplingParams p;
  p.set_temperature(Chance(0.5) ? 0.0f : 0.8f);
  p.set_top_p(Chance(0.5) ? 1.0f : 0.9f);
  p.set_repetition_penalty(1.0f);
  p.set_seed(static_cast<uint64_t>(Int(0, 1 << 30)));  // nodes require one (the router draws it)
  p.set_max_tokens(static_cast<uint32_t>(Int(1, 24)));
  p.set_ignore_eos(Chance(0.5));
  return p;
}

bool RandomEnvelopeMaker::Plausible(const std::string& payload, proto::Envelope* env) {
  const auto prompt = [&](google::protobuf::RepeatedField<int32_t>* ids) {
    for (int64_t n = Int(1, 64); n > 0; --n) ids->Add(Token());
  };
  if (payload == "prefill_request") {
    proto::PrefillRequest* m = env->mutable_prefill_request();
    m->set_request_id(Pick(options_.request_ids));
    prompt(m->mutable_prompt_token_ids());
    *m->mutable_sampling() = PlausibleSampling();
    m->set_decode_node_id(options_.decode_node);
  } else if (payload == "reserve_kv") {
    proto::ReserveKv* m = env->mutable_reserve_kv();
    m->set_request_id(Pick(options_.request_ids));
    prompt(m->mutable_prompt_token_ids());
    *m->mutable_sampling() = PlausibleSampling();
    m->set_router_id(options_.router);
  } else if (payload == "kv_ready") {
    proto::KvReady* m = env->mutable_kv_ready();
    m->set_request_id(Pick(options_.request_ids));
    m->set_ok(Chance(0.7));
    m->set_first_token_id(Token());
    m->set_bytes(static_cast<uint64_t>(Int(0, 1 << 20)));
  } else if (payload == "abort") {
    env->mutable_abort()->set_request_id(Pick(options_.request_ids));
  } else {
    return false;
  }
  return true;
}

void RandomEnvelopeMaker::Mutate(Message* m) {
  const Reflection* r = m->GetReflection();
  for (int64_t k = Int(0, 2); k > 0; --k) {
    Message* target = m;
    const auto* d = m->GetDescriptor();
    const FieldDescriptor* f = d->field(static_cast<int>(Int(0, d->field_count() - 1)));
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() && Chance(0.7)) {
      target = r->MutableMessage(m, f);  // a field of the nested message (the sampling parameters)
      const auto* nd = target->GetDescriptor();
      if (nd->field_count() == 0) continue;
      f = nd->field(static_cast<int>(Int(0, nd->field_count() - 1)));
    }
    target->GetReflection()->ClearField(target, f);
    FillField(target, f, 2);
  }
}

proto::Envelope RandomEnvelopeMaker::Next(const std::vector<std::string>& payloads) {
  proto::Envelope env;
  const std::string name = Pick(payloads);
  const FieldDescriptor* f = proto::Envelope::descriptor()->FindFieldByName(name);
  if (f == nullptr || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return env;
  if (Chance(0.5) && Plausible(name, &env)) {
    Mutate(env.GetReflection()->MutableMessage(&env, f));
  } else {
    Fill(env.GetReflection()->MutableMessage(&env, f), 1);
  }
  return env;
}

}  // namespace tandem::testing
