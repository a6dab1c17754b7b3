#include "executors/kubernetes/pod_names.h"

#include <set>

#include "gtest/gtest.h"

namespace kiln {
namespace kubernetes {
namespace {

bool IsDns1123Label(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-')
    return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  return true;
}

TEST(PodName, DeterministicPerAttempt) {
  EXPECT_EQ(PodName("r1", "build", 1), "kiln-r1-build-1");
  EXPECT_NE(PodName("r1", "build", 1), PodName("r1", "build", 2));
  std::set<std::string> names;
  for (int i = 0; i < 100; ++i) {
    std::string n =
        PodName("20261202-112504-abcdef", "Task Name " + std::to_string(i), 3);
    EXPECT_TRUE(IsDns1123Label(n)) << n;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), 100u);
}

TEST(PodLabels, ValuesAreLabelsAndExactNamesAreAnnotations) {
  auto labels = PodLabels("Run_1", "my task", 2);
  EXPECT_EQ(labels.at(kLabelAttempt), "2");
  EXPECT_EQ(labels.at(kLabelManagedBy), "kiln");
  EXPECT_TRUE(IsDns1123Label(labels.at(kLabelRun)));
  EXPECT_TRUE(IsDns1123Label(labels.at(kLabelTask)));
  auto annotations = PodAnnotations("Run_1", "my task");
  EXPECT_EQ(annotations.at(kAnnotationRunId), "Run_1");
  EXPECT_EQ(annotations.at(kAnnotationTaskName), "my task");
  EXPECT_EQ(RunSelector("Run_1"), "kiln.dev/run=" + labels.at(kLabelRun) +
                                      ",app.kubernetes.io/managed-by=kiln");
}

}  // namespace
}  // namespace kubernetes
}  // namespace kiln
