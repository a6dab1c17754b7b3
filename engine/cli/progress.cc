#include "engine/cli/progress.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "proto/json.h"

namespace kiln::cli {
namespace {

constexpr size_t kTailLines = 10;

bool IsFinalTask(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_FAILED ||
         s == v1::TASK_SKIPPED || s == v1::TASK_CACHED ||
         s == v1::TASK_CANCELLED || s == v1::TASK_TIMED_OUT;
}

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d));
}

}  // namespace

const char* TaskStateWord(v1::TaskState s) {
  switch (s) {
    case v1::TASK_PENDING:
      return "pending";
    case v1::TASK_RUNNING:
      return "running";
    case v1::TASK_SUCCEEDED:
      return "succeeded";
    case v1::TASK_FAILED:
      return "FAILED";
    case v1::TASK_SKIPPED:
      return "skipped";
    case v1::TASK_CACHED:
      return "cached";
    case v1::TASK_CANCELLED:
      return "cancelled";
    case v1::TASK_TIMED_OUT:
      return "TIMED OUT";
    case v1::TASK_WAITING_FOR_APPROVAL:
      return "waiting for approval";
    default:
      return "?";
  }
}

const char* RunStateWord(v1::RunState s) {
  switch (s) {
    case v1::RUN_QUEUED:
      return "queued";
    case v1::RUN_RUNNING:
      return "running";
    case v1::RUN_SUCCEEDED:
      return "succeeded";
    case v1::RUN_FAILED:
      return "FAILED";
    case v1::RUN_CANCELLED:
      return "cancelled";
    case v1::RUN_TIMED_OUT:
      return "TIMED OUT";
    default:
      return "?";
  }
}

ProgressView::ProgressView(Mode mode, FILE* out) : mode_(mode), out_(out) {
  if (mode_ == Mode::kAuto) {
    const char* term = std::getenv("TERM");
    bool tty = isatty(STDERR_FILENO) && std::getenv("NO_COLOR") == nullptr &&
               !(term != nullptr && std::strcmp(term, "dumb") == 0);
    mode_ = tty ? Mode::kLive : Mode::kPlain;
  }
  if (out_ == nullptr) out_ = mode_ == Mode::kJson ? stdout : stderr;
  if (mode_ == Mode::kLive) ticker_ = std::thread([this] { Ticker(); });
  if (mode_ == Mode::kJson || mode_ == Mode::kPlain) {
    writer_ = std::thread([this] { Writer(); });
  }
}

ProgressView::~ProgressView() { StopThreads(); }

void ProgressView::StopThreads() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  if (writer_.joinable()) writer_.join();
}

void ProgressView::Writer() {
  mu_.Lock();
  while (true) {
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !pending_.empty() || stop_;
    });
    if (pending_.empty()) break;  // and stop_
    if (!stop_) {
      // The rest of the batch the first line came with.
      mu_.AwaitWithDeadline(
          [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stop_; },
          absl::Now() + kCoalesce);
    }
    std::string chunk;
    chunk.swap(pending_);
    // Written without mu_ (OnEvent keeps appending), under out_mu_ taken
    // before mu_ is released: the chunks keep their order.
    out_mu_.Lock();
    mu_.Unlock();
    WriteChunk(chunk);
    out_mu_.Unlock();
    mu_.Lock();
  }
  mu_.Unlock();
}

void ProgressView::Queued() {
  if (stop_) {  // after Finish: the writer may be gone; write it now
    std::string chunk;
    chunk.swap(pending_);
    MutexLock out(&out_mu_);
    WriteChunk(chunk);
  }
}

void ProgressView::WriteChunk(const std::string& chunk) {
  std::fwrite(chunk.data(), 1, chunk.size(), out_);
  std::fflush(out_);
}

void ProgressView::Ticker() {
  MutexLock lock(&mu_);
  while (!stop_) {
    mu_.AwaitWithDeadline([this]()
                              ABSL_NO_THREAD_SAFETY_ANALYSIS { return stop_; },
                          absl::Now() + absl::Milliseconds(200));
    if (!stop_) Redraw();
  }
}

void ProgressView::Clear() {
  for (int i = 0; i < drawn_lines_; ++i) std::fputs("\x1b[1A\x1b[2K", out_);
  drawn_lines_ = 0;
}

void ProgressView::Redraw() {
  Clear();
  int done = 0, failed = 0, skipped = 0, cached = 0;
  std::vector<std::string> running;
  absl::Time now = absl::Now();
  for (const auto& [name, t] : tasks_) {
    switch (t.state) {
      case v1::TASK_SUCCEEDED:
        ++done;
        break;
      case v1::TASK_CACHED:
        ++cached;
        break;
      case v1::TASK_SKIPPED:
        ++skipped;
        break;
      case v1::TASK_FAILED:
      case v1::TASK_TIMED_OUT:
      case v1::TASK_CANCELLED:
        ++failed;
        break;
      case v1::TASK_RUNNING:
        running.push_back(absl::StrCat(
            "  \x1b[36m", name, "\x1b[0m ", Seconds(now - t.started),
            t.attempt > 1 ? absl::StrCat(" (attempt ", t.attempt, ")") : "",
            t.tail.empty() ? ""
                           : absl::StrCat("  ", t.tail.back().substr(0, 60))));
        break;
      default:
        break;
    }
  }
  std::fprintf(out_,
               "\x1b[1m[%s]\x1b[0m %d done, %d cached, %d skipped, "
               "%s%d failed\x1b[0m, %zu running\n",
               Seconds(now - start_).c_str(), done, cached, skipped,
               failed ? "\x1b[31m" : "", failed, running.size());
  drawn_lines_ = 1;
  for (size_t i = 0; i < running.size() && i < 8; ++i) {
    std::fprintf(out_, "%s\n", running[i].c_str());
    ++drawn_lines_;
  }
  if (running.size() > 8) {
    std::fprintf(out_, "  ... and %zu more\n", running.size() - 8);
    ++drawn_lines_;
  }
  std::fflush(out_);
}

void ProgressView::OnEvent(const v1::RunEvent& e) {
  MutexLock lock(&mu_);
  if (mode_ == Mode::kJson) {
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    const size_t before = pending_.size();
    if (proto::AppendJson(e, opts, &pending_).ok()) {
      pending_.push_back('\n');
    } else {
      pending_.resize(before);
    }
    Queued();
    return;
  }
  absl::Time now = absl::Now();
  std::string permanent;  // lines that scroll above the live block
  if (e.has_task_state()) {
    const auto& ts = e.task_state();
    TaskView& t = tasks_[ts.task()];
    t.state = ts.state();
    if (ts.state() == v1::TASK_RUNNING) {
      if (ts.attempt() <= 1 || t.started == absl::Time()) t.started = now;
      t.attempt = ts.attempt();
      t.tail.clear();
    }
    if (mode_ == Mode::kPlain) {
      permanent = absl::StrCat(ts.task(), ": ", TaskStateWord(ts.state()));
      if (ts.state() != v1::TASK_RUNNING && ts.state() != v1::TASK_SKIPPED &&
          ts.state() != v1::TASK_PENDING && t.started != absl::Time()) {
        absl::StrAppend(&permanent, " in ", Seconds(now - t.started));
      }
      if (!ts.reason().empty())
        absl::StrAppend(&permanent, " (", ts.reason(), ")");
    } else if (IsFinalTask(ts.state()) && ts.state() != v1::TASK_RUNNING) {
      bool bad =
          ts.state() == v1::TASK_FAILED || ts.state() == v1::TASK_TIMED_OUT;
      permanent = absl::StrCat(bad ? "\x1b[31m" : "\x1b[32m", ts.task(), ": ",
                               TaskStateWord(ts.state()), "\x1b[0m");
      if (t.started != absl::Time() && ts.state() != v1::TASK_SKIPPED) {
        absl::StrAppend(&permanent, " in ", Seconds(now - t.started));
      }
      if (!ts.reason().empty())
        absl::StrAppend(&permanent, " (", ts.reason(), ")");
      if (bad) {
        for (const auto& line : t.tail) {
          absl::StrAppend(&permanent, "\n  | ", line);
        }
      }
    }
  } else if (e.has_log()) {
    TaskView& t = tasks_[e.log().task()];
    t.tail.push_back(e.log().text());
    if (t.tail.size() > kTailLines) t.tail.pop_front();
    if (mode_ == Mode::kPlain) {
      permanent = absl::StrCat(e.log().task(), " | ", e.log().text());
    }
  } else if (e.has_notification()) {
    permanent = NotificationLine(e.notification());
  } else if (e.has_run_state() && mode_ == Mode::kPlain &&
             e.run_state().state() == v1::RUN_RUNNING) {
    permanent = absl::StrCat("run ", e.run_id(), ": running");
  }
  if (mode_ == Mode::kLive) {
    Clear();
    if (!permanent.empty()) std::fprintf(out_, "%s\n", permanent.c_str());
    Redraw();
  } else if (!permanent.empty()) {
    pending_.append(permanent).push_back('\n');
    Queued();
  }
}

std::string NotificationLine(const v1::NotificationSent& sent) {
  std::string line = absl::StrCat("notification ", sent.index() + 1, " (",
                                  sent.on(), ") to ", sent.target());
  if (sent.delivered()) {
    absl::StrAppend(&line, ": delivered (HTTP ", sent.http_status(), ")");
  } else {
    absl::StrAppend(&line, ": WARNING: not delivered after ", sent.attempts(),
                    " attempts: ", sent.error());
  }
  return line;
}

void ProgressView::Finish(const v1::Run& run) {
  StopThreads();  // the writer writes every line left first
  MutexLock lock(&mu_);
  if (mode_ == Mode::kJson) return;
  if (mode_ == Mode::kLive) Clear();
  int n[16] = {0};
  for (const auto& t : run.tasks()) {
    if (t.state() >= 0 && t.state() < 16) ++n[t.state()];
  }
  std::fprintf(
      out_,
      "run %s: %s in %s — %d succeeded, %d cached, %d skipped, "
      "%d failed%s%s\n",
      run.id().c_str(), RunStateWord(run.state()),
      Seconds(absl::Now() - start_).c_str(), n[v1::TASK_SUCCEEDED],
      n[v1::TASK_CACHED], n[v1::TASK_SKIPPED],
      n[v1::TASK_FAILED] + n[v1::TASK_TIMED_OUT] + n[v1::TASK_CANCELLED],
      run.reason().empty() ? "" : " — ", run.reason().c_str());
  std::fflush(out_);
}

}  // namespace kiln::cli
