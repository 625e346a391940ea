// The tokenizer of the project's built-in models, loaded once from the committed assets.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace tandem::loadgen::testing {

inline const Tokenizer& BuiltinTokenizer() {
  static std::unique_ptr<Tokenizer> t = [] {
    auto r = Tokenizer::FromFile(std::string(TANDEM_TEST_DATA_DIR) + "/../../model/assets/tokenizer.json");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return *t;
}

}  // namespace tandem::loadgen::testing
