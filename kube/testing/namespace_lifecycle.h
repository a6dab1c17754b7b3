// Namespace deletion as the real API server does it, for the double:
// DELETE marks the namespace (metadata.deletionTimestamp, status.phase
// Terminating, a NamespaceDeletionContentFailure-free condition list), the
// namespace controller deletes what it holds, and the namespace disappears
// once that is done (here: after FakeApiServerOptions::namespace_termination).
// While Terminating, creating anything in it is refused with 403 Forbidden
// "... is forbidden: unable to create new content in namespace NS because
// it is being terminated" (cause NamespaceTerminating), as the real
// NamespaceLifecycle admission plugin does.
#ifndef KILN_KUBE_TESTING_NAMESPACE_LIFECYCLE_H_
#define KILN_KUBE_TESTING_NAMESPACE_LIFECYCLE_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kiln::kube::testing {

bool IsNamespaceTerminating(const nlohmann::json& ns);
// Sets deletionTimestamp (now), status.phase Terminating and the
// conditions a namespace controller reports while it deletes the content.
void MarkNamespaceTerminating(nlohmann::json& ns, absl::Time now);
// The 403 Status body refusing to create `name` (of `plural`, `group`) in
// terminating namespace `ns`.
nlohmann::json NamespaceTerminatingStatus(const std::string& plural,
                                          const std::string& group,
                                          const std::string& name,
                                          const std::string& ns);

// Calls finish(name) once per scheduled namespace, `delay` after Schedule,
// on its own thread (finish takes the server's lock itself). Stop() (also
// the destructor) joins the thread; pending namespaces are dropped.
class NamespaceReaper {
 public:
  NamespaceReaper(absl::Duration delay,
                  std::function<void(const std::string&)> finish);
  ~NamespaceReaper();
  NamespaceReaper(const NamespaceReaper&) = delete;
  NamespaceReaper& operator=(const NamespaceReaper&) = delete;

  void Schedule(const std::string& name);
  void Stop();

 private:
  void Run();

  const absl::Duration delay_;
  const std::function<void(const std::string&)> finish_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<absl::Time, std::string> due_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::thread thread_;
};

}  // namespace kiln::kube::testing

#endif  // KILN_KUBE_TESTING_NAMESPACE_LIFECYCLE_H_
