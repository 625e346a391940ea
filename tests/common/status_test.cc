#include "common/status.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

Status FailsWith(StatusCode code) { return Status(code, "boom"); }

Status Propagates() {
  RETURN_IF_ERROR(FailsWith(StatusCode::kDataLoss));
  return Status::Ok();
}

Result<int> MaybeInt(bool good) {
  if (good) return 7;
  return NotFoundError("no int");
}

Result<int> Doubles(bool good) {
  ASSIGN_OR_RETURN(int v, MaybeInt(good));
  return v * 2;
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ReturnIfErrorKeepsCodeAndRecordsCallSite) {
  Status s = Propagates();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("boom"), std::string::npos);
  EXPECT_NE(s.message().find("status_test.cc"), std::string::npos);
  EXPECT_NE(s.message().find("FailsWith"), std::string::npos);
}

TEST(StatusTest, ResultValueAndError) {
  auto good = Doubles(true);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 14);
  auto bad = Doubles(false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
}

TEST(StatusTest, WithContextPrepends) {
  Status s = InvalidArgumentError("bad dtype").WithContext("reading a.safetensors");
  EXPECT_EQ(s.message(), "reading a.safetensors: bad dtype");
  EXPECT_EQ(Status::Ok().WithContext("x").ok(), true);
}

TEST(StatusTest, AReasonTravelsWithContextAndNeverMakesOkAnError) {
  Status s = ResourceExhaustedError("no node meets it").WithReason("slo_unattainable").WithContext("placing");
  EXPECT_EQ(s.reason(), "slo_unattainable");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "placing: no node meets it");
  EXPECT_TRUE(Status::Ok().WithReason("x").ok());
  EXPECT_EQ(Status::Ok().WithReason("x").reason(), "");
  EXPECT_EQ(InternalError("y").reason(), "");
}

}  // namespace
}  // namespace tandem
