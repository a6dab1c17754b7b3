// Internal to the loader: YAML node -> proto, one function per message.
// Each records positions and appends diagnostics through the Decoder.
#ifndef KILN_ENGINE_PIPELINE_DECODE_H_
#define KILN_ENGINE_PIPELINE_DECODE_H_

#include <string>

#include "engine/pipeline/decoder.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline::internal {

void DecodePipeline(Decoder* d, const Node& root, v1::Pipeline* out);
void DecodeTask(Decoder* d, const Node& node, const std::string& path,
                v1::Task* out);
// `pod:` of a task (hints.pod), each value checked at its position.
void DecodePodShape(Decoder* d, const Node& node, const std::string& path,
                    v1::PodShape* out);
// `notify:` of the pipeline (Pipeline.notify).
void DecodeNotify(Decoder* d, const Node& node, const std::string& path,
                  google::protobuf::RepeatedPtrField<v1::Notification>* out);
void DecodeCondition(Decoder* d, const Node& node, const std::string& path,
                     v1::Condition* out);

}  // namespace kiln::pipeline::internal

#endif  // KILN_ENGINE_PIPELINE_DECODE_H_
