// Validation stays linear in memory on large graphs (the ancestor check
// once kept a bit per task pair: a 140k-task chain took 2.5 GB).
#include <sys/resource.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/validate.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

long MaxRssKb() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// t0 <- t1 <- ... : each task needs the previous one and consumes the
// artifact of the previous one and of t0 (a far ancestor).
v1::Pipeline Chain(int n) {
  v1::Pipeline p;
  p.set_name("chain");
  for (int i = 0; i < n; ++i) {
    v1::Task* t = p.add_tasks();
    t->set_name(absl::StrCat("t", i));
    t->mutable_run()->add_command("/bin/true");
    v1::ArtifactOutput* out = t->add_outputs();
    out->set_artifact(absl::StrCat("a", i));
    out->add_paths("out");
    if (i > 0) {
      t->add_needs(absl::StrCat("t", i - 1));
      t->add_inputs()->set_artifact(absl::StrCat("a", i - 1));
      if (i > 1) t->add_inputs()->set_artifact("a0");
    }
  }
  return p;
}

TEST(ValidateGraphTest, LongChainValidatesInLinearMemory) {
  const int n = 60000;  // a bit matrix would be 450 MB
  v1::Pipeline p = Chain(n);
  long before = MaxRssKb();
  std::vector<Diagnostic> errors = ValidatePipeline(p);
  long grown_kb = MaxRssKb() - before;
  EXPECT_TRUE(errors.empty()) << errors.front().ToString();
  EXPECT_LT(grown_kb, 150 * 1024)
      << "validation grew the heap by " << grown_kb / 1024 << " MiB";
}

TEST(ValidateGraphTest, FarAncestorsAndNonAncestorsAreTold) {
  v1::Pipeline p = Chain(300);
  // A side task that needs t0 only: t299's artifact is not for it, t0's is.
  v1::Task* side = p.add_tasks();
  side->set_name("side");
  side->mutable_run()->add_command("/bin/true");
  side->add_needs("t0");
  side->add_inputs()->set_artifact("a0");
  side->add_inputs()->set_artifact("a299");
  // t299 consumes a170, a far ancestor in another group of 64.
  p.mutable_tasks(299)->add_inputs()->set_artifact("a170");
  std::vector<Diagnostic> errors = ValidatePipeline(p);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("'a299'"), std::string::npos)
      << errors[0].ToString();
  EXPECT_NE(errors[0].message.find("does not need"), std::string::npos);
}

}  // namespace
}  // namespace kiln::pipeline
