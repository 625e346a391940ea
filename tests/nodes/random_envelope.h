// Seeded, structure-aware random control messages for the node services' robustness tests: an
// Envelope with one service-level payload (never a transport message, never a ClusterView, whose
// addresses a node would connect to), every field filled through protobuf reflection with values
// chosen to hit edges: 0, -1, extremes, NaN and infinities, empty and long strings, token ids
// inside and outside the vocabulary, and request ids from a small pool so that messages about the
// same request meet (a reservation, then its KvReady, then an Abort). Half of the requests,
// reservations, KvReady and aborts start from a well-formed message that up to two fields of are
// then replaced by random values, so that the storm gets past validation into the engines too.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "proto/tandem.pb.h"

namespace tandem::testing {

struct RandomEnvelopeOptions {
  std::vector<std::string> request_ids;  // ids drawn for string fields named *request_id
  std::vector<std::string> node_ids;     // ids drawn for *node_id and router_id fields
  int32_t vocab_size = 0;                // token ids: mostly below it, sometimes not
  std::string decode_node;               // well-formed requests name this decode node
  std::string router;                    // and well-formed reservations this router
  int max_repeated = 12;                 // elements per repeated field at most (token ids: 8x)
};

class RandomEnvelopeMaker {
 public:
  RandomEnvelopeMaker(uint64_t seed, RandomEnvelopeOptions options);

  // One message; its payload is one of `payloads` (Envelope field names, e.g. "reserve_kv").
  proto::Envelope Next(const std::vector<std::string>& payloads);

 private:
  // A well-formed payload of that name in `env` (false: no template for it).
  bool Plausible(const std::string& payload, proto::Envelope* env);
  void Mutate(google::protobuf::Message* m);
  proto::SamplingParams PlausibleSampling();
  std::string Pick(const std::vector<std::string>& pool);  // one of them ("x" for none)
  int32_t Token();                                         // an id in the vocabulary
  void Fill(google::protobuf::Message* m, int depth);
  void FillField(google::protobuf::Message* m, const google::protobuf::FieldDescriptor* f, int depth);
  int64_t Int(int64_t lo, int64_t hi);
  int64_t EdgeInt(bool is_unsigned, int bits);
  double EdgeDouble();
  std::string String(const google::protobuf::FieldDescriptor* f);
  bool Chance(double p);

  std::mt19937_64 rng_;
  RandomEnvelopeOptions options_;
};

}  // namespace tandem::testing
