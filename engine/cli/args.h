// A small per-verb argument parser: `--flag value`, `--flag=value`, boolean
// `--flag`, repeated flags, and positionals. Unknown flags are usage errors.
#ifndef KILN_ENGINE_CLI_ARGS_H_
#define KILN_ENGINE_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kiln::cli {

// Bounds of the numeric flags shared by several verbs.
constexpr int64_t kMaxJobs = 256;  // task attempts at once, per run

class Args {
 public:
  // usage: the text printed by --help and after a usage error.
  explicit Args(std::string usage) : usage_(std::move(usage)) {}

  // Declares flags before Parse(). `name` without the leading dashes.
  void Flag(const std::string& name, std::string help);      // takes a value
  void Repeated(const std::string& name, std::string help);  // value, 0..n
  void Bool(const std::string& name, std::string help);      // no value

  // Parses args. On --help prints usage to stdout and returns false with
  // *exit_code = 0; on a usage error prints it and usage to stderr and
  // returns false with *exit_code = 2.
  bool Parse(const std::vector<std::string>& args, int* exit_code);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

  // Flag `name` as a whole number in [min, max] into *out (left unchanged
  // when the flag is absent). InvalidArgument naming the flag and the
  // range otherwise: every numeric flag is bounded.
  absl::Status IntFlag(const std::string& name, int64_t min, int64_t max,
                       int64_t* out) const;

  // Prints "kiln: <message>" and the usage to stderr; returns 2.
  int UsageError(const std::string& message) const;
  std::string Help() const;

 private:
  enum class Type { kValue, kRepeated, kBool };
  struct Spec {
    Type type;
    std::string help;
  };
  std::string usage_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_ARGS_H_
