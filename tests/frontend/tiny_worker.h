// A colocated worker (LocalEngineClient) on the tiny model with its ServedModel: what the HTTP
// tests that run a server in this process serve from. Failures are test failures; on one the
// members are left null.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "frontend/served_model.h"
#include "kernels/backend.h"
#include "tests/frontend/serving_test_util.h"
#include "worker/local_engine_client.h"

namespace tandem::testing {

struct TinyWorker {
  std::unique_ptr<LocalEngineClient> client;
  std::shared_ptr<const ServedModel> model;
};

inline TinyWorker StartTinyWorker(const LocalEngineOptions& options = {}, const std::string& served_name = "") {
  TinyWorker w;
  auto backend = CreateBackend("cpu");
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (!backend.ok()) return w;
  auto client = LocalEngineClient::Create(std::move(backend).value(), TinyModelDir(), options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return w;
  auto model = LoadServedModel(TinyModelDir(), served_name, (*client)->config());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return w;
  w.client = std::move(client).value();
  w.model = std::move(model).value();
  return w;
}

}  // namespace tandem::testing
