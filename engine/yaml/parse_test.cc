#include "engine/yaml/parse.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kiln::yaml {
namespace {

TEST(ParseTest, MappingKeepsOrderAndPositions) {
  auto n = Parse("b: 1\na:\n  - x\n  - 'y'\n", "f.yaml");
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_TRUE(n->IsMapping());
  ASSERT_EQ(n->entries().size(), 2u);
  EXPECT_EQ(n->entries()[0].first.value(), "b");
  EXPECT_EQ(n->entries()[1].first.value(), "a");
  const Node* a = n->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->IsSequence());
  EXPECT_EQ(a->items()[1].value(), "y");
  EXPECT_TRUE(a->items()[1].quoted());
  EXPECT_FALSE(a->items()[0].quoted());
  EXPECT_EQ(a->items()[1].mark().line, 4);
  EXPECT_EQ(a->items()[1].mark().column, 5);
}

TEST(ParseTest, NullsAndEmptyDocument) {
  auto n = Parse("a: ~\nb:\n", "f");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->Find("a")->IsNull());
  EXPECT_TRUE(n->Find("b")->IsNull());
  auto empty = Parse("", "f");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->IsNull());
}

TEST(ParseTest, DuplicateKeyRejectedWithPosition) {
  auto n = Parse("a: 1\nb: 2\na: 3\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(),
            "p.yaml:3:1: duplicate key \"a\" (first at line 1)");
}

TEST(ParseTest, UnterminatedQuoteAtEndOfFileRejectedWithPosition) {
  // yaml-cpp alone takes both as complete scalars.
  auto d = Parse("a: 1\nb: \"abc\n", "p.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "p.yaml:2:4: unterminated quoted string (no closing \" before the "
            "end of the file)");
  auto s = Parse("a: 1\nb: 'it''s\n", "p.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("p.yaml:2:4: "), std::string::npos)
      << s.status();
  // Closed ones, with escaped quotes inside, still parse.
  auto ok = Parse("a: \"x\\\"y\"\nb: 'it''s'\nc: |\n  \"\n", "p.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->Find("a")->value(), "x\"y");
  EXPECT_EQ(ok->Find("b")->value(), "it's");
}

TEST(ParseTest, SecondDocumentRejected) {
  auto n = Parse("a: 1\n---\nb: 2\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("p.yaml:3:1: a second YAML document"),
            std::string::npos)
      << n.status();
}

TEST(ParseTest, TrailingJunkRejected) {
  auto n = Parse("a: 1\n]\n", "p.yaml");
  EXPECT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("p.yaml:2:"), std::string::npos)
      << n.status();
}

TEST(ParseTest, CommaJunkTerminates) {
  // yaml-cpp 0.7.0's LoadAll loops forever on this.
  EXPECT_FALSE(ParseAll("\n,\n", "j").ok());
  EXPECT_FALSE(Parse("\n,\n", "j").ok());
}

TEST(ParseTest, SelfReferencingAliasRejected) {
  auto n = Parse("a: &a [*a]\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("recursive"), std::string::npos);
}

TEST(ParseTest, AliasesExpandedWithinBudget) {
  auto n = Parse("a: &x {k: v}\nb: *x\n", "p");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Find("b")->Find("k")->value(), "v");
  Limits no_alias;
  no_alias.allow_aliases = false;
  EXPECT_FALSE(Parse("a: &x 1\nb: *x\n", "p", no_alias).ok());
}

TEST(ParseTest, BillionLaughsBounded) {
  std::string doc = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 12; ++i) {
    doc += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) {
      doc += (j ? ", *a" : "*a") + std::to_string(i - 1);
    }
    doc += "]\n";
  }
  auto n = Parse(doc, "bomb.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ParseTest, DeepNestingBounded) {
  std::string deep(100000, '[');
  auto n = Parse(deep, "deep.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(n.status().message().find("nesting deeper than 64"),
            std::string::npos);
}

TEST(ParseTest, LimitsOnSizeAndScalars) {
  Limits small;
  small.max_bytes = 10;
  EXPECT_EQ(Parse("a: 0123456789\n", "f", small).status().code(),
            absl::StatusCode::kResourceExhausted);
  Limits scalar;
  scalar.max_scalar_bytes = 4;
  EXPECT_EQ(Parse("a: 12345\n", "f", scalar).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ParseTest, ParseAllDropsEmptyDocuments) {
  auto docs = ParseAll("a: 1\n---\n---\nb: 2\n", "m.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1].Find("b")->value(), "2");
}

TEST(ParseTest, ByteOrderMarkAccepted) {
  auto n = Parse(
      "\xEF\xBB\xBF"
      "a: 1\n",
      "f");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Find("a")->value(), "1");
}

TEST(ParseTest, MalformedUtf8RejectedWithPosition) {
  auto n = Parse("a: 1\nc:\xfa<<: 2\n", "u.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(),
            "u.yaml:2:3: invalid character (byte 0xFA): YAML must be "
            "printable UTF-8");
  EXPECT_FALSE(Parse(std::string("a: x\0y\n", 7), "nul").ok());
  EXPECT_FALSE(Parse("a: \xed\xa0\x80\n", "s").ok());  // a surrogate
  EXPECT_FALSE(Parse("a: \xc0\xaf\n", "o").ok());      // overlong '/'
  EXPECT_TRUE(Parse("a: \xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x9a\x80\n", "ok").ok());
}

TEST(ReadFileCappedTest, RefusesMissingAndNonRegular) {
  EXPECT_EQ(ReadFileCapped("/nonexistent/x", 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(ReadFileCapped("/dev/null", 10).ok());
  EXPECT_FALSE(ReadFileCapped("/", 10).ok());
}

// Parses run on reused parser threads: results and errors must stay each
// caller's own, also when more callers than workers parse at once.
TEST(ParseTest, ConcurrentParsesGetTheirOwnResults) {
  constexpr int kThreads = 10, kEach = 100;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < kEach; ++i) {
        const std::string want = absl::StrCat(t, "-", i);
        if (i % 10 == 3) {  // an error on a reused worker
          auto bad = Parse(absl::StrCat("a: [", want), want);
          if (bad.ok() ||
              bad.status().message().find(want) == std::string::npos) {
            ++wrong;
          }
          continue;
        }
        auto n = Parse(absl::StrCat("k: ", want, "\n"), "f.yaml");
        if (!n.ok() || n->Find("k") == nullptr ||
            n->Find("k")->value() != want) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

// A reused parser thread keeps its large stack: deep input is still
// refused by the depth limit, not by a crash, however often it comes.
TEST(ParseTest, DeepNestingOnReusedParserThreads) {
  for (int i = 0; i < 20; ++i) {
    auto n = Parse(std::string(100000, '['), "deep.yaml");
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.status().message().find("nesting deeper than 64"),
              std::string::npos);
    auto ok = Parse(std::string(60, '[') + std::string(60, ']'), "ok.yaml");
    EXPECT_TRUE(ok.ok()) << ok.status();
  }
}

// The deepest inputs, with a depth limit above yaml-cpp's own (500
// levels), so that the parse recurses as deep as it ever can.
std::vector<std::string> DeepestInputs() {
  std::string block_map, block_seq;
  for (int i = 0; i < 700; ++i) {
    block_map += std::string(i, ' ') + "a:\n";
    block_seq += std::string(i, ' ') + "- \n";
  }
  return {std::string(100000, '['), std::string(100000, '{'), block_map,
          block_seq};
}

// Runs fn on a thread with a stack of `bytes`.
void OnStackOf(size_t bytes, std::function<void()> fn) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, bytes), 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  (*static_cast<std::function<void()>*>(arg))();
                  return nullptr;
                },
                &fn),
            0);
  pthread_attr_destroy(&attr);
  pthread_join(thread, nullptr);
}

// A parse runs on the caller's thread when 1 MiB of its stack is left: with
// just that much, the deepest inputs yaml-cpp accepts are refused, not a
// crash (a stack overflow would kill the test).
TEST(ParseTest, DeepestInputsOnTheCallersStack) {
  OnStackOf((1 << 20) + (256 << 10), [] {
    Limits limits;
    limits.max_depth = 100000;
    for (const std::string& in : DeepestInputs()) {
      auto n = Parse(in, "deep.yaml", limits);
      EXPECT_FALSE(n.ok());
    }
    auto ok = Parse("a: [1, {b: 2}]", "ok.yaml");
    EXPECT_TRUE(ok.ok()) << ok.status();
  });
}

// A caller with little stack left gets a parser thread's: the same inputs
// on a 128 KiB stack (the deepest needs ~216 KiB) are refused, not a crash.
TEST(ParseTest, DeepestInputsFromASmallStack) {
  OnStackOf(128 << 10, [] {
    Limits limits;
    limits.max_depth = 100000;
    for (const std::string& in : DeepestInputs()) {
      auto n = Parse(in, "deep.yaml", limits);
      EXPECT_FALSE(n.ok());
    }
    auto deep = Parse(std::string(100000, '['), "deep.yaml");
    ASSERT_FALSE(deep.ok());
    EXPECT_NE(deep.status().message().find("nesting deeper than 64"),
              std::string::npos);
  });
}

// The child's wait status; kills it (and reports -1) after 20 s.
int WaitUpTo20s(pid_t pid) {
  int status = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  pid_t got = 0;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (got != 0) return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  ADD_FAILURE() << "the child did not finish in 20 s";
  return -1;
}

// A child forked after parses have started the parser threads has none of
// them: its parse must not wait for a thread that is not there.
TEST(ParseTest, ParsesInAForkedChild) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  // TSan refuses any thread start after a multi-threaded fork (and the
  // child's parse starts one); the plain and ASan builds run this test.
  GTEST_SKIP() << "ThreadSanitizer cannot start threads after such a fork";
#endif
#endif
  ASSERT_TRUE(Parse("a: 1", "warm.yaml").ok());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto n = Parse("b: 2", "child.yaml");
    _exit(n.ok() && n->Find("b") != nullptr && n->Find("b")->value() == "2"
              ? 0
              : 1);
  }
  int status = WaitUpTo20s(pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
// The main thread's stack is measured against its rlimit: a child whose
// limit is 192 KiB (the deepest parse needs ~216 KiB) must not parse on
// it, and the deepest inputs are refused there, not a crash.
TEST(ParseTest, DeepestInputsOnASmallMainStack) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  GTEST_SKIP() << "ThreadSanitizer cannot start threads after such a fork";
#endif
#endif
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) != 0) _exit(2);
    rl.rlim_cur = 192 << 10;
    if (setrlimit(RLIMIT_STACK, &rl) != 0) _exit(3);
    Limits limits;
    limits.max_depth = 100000;
    for (const std::string& in : DeepestInputs()) {
      if (Parse(in, "deep.yaml", limits).ok()) _exit(4);
    }
    _exit(Parse("a: [1]", "ok.yaml").ok() ? 0 : 5);
  }
  int status = WaitUpTo20s(pid);
  ASSERT_TRUE(WIFEXITED(status))
      << "child ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace kiln::yaml
