// Development aid: reads a YAML stream on stdin, prints it as kustomize would.
#include <iostream>
#include <sstream>

#include "engine/render/convert.h"
#include "engine/render/emit.h"

int main() {
  std::stringstream ss;
  ss << std::cin.rdbuf();
  auto docs = kiln::render::ParseYamlStream(ss.str(), "<stdin>");
  if (!docs.ok()) {
    std::cerr << docs.status().message() << "\n";
    return 1;
  }
  std::cout << kiln::render::EmitStream(*docs);
  return 0;
}
