// The public header set of the kiln library (docs/embedding.md): the engine
// facade and its run handles, the executor interface and the local sandbox
// executor, the pipeline builder, the generated kiln/v1 protos, and the
// version. Programs include this one header; everything else installed is
// what these headers themselves include.
#ifndef KILN_API_KILN_H_
#define KILN_API_KILN_H_

#include "api/builder.h"
#include "api/version.h"
#include "engine/engine.h"
#include "executors/executor.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

#endif  // KILN_API_KILN_H_
