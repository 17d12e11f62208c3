# daemons.cmake - the wire protocol (proto/g3n.proto, generated with protoc-c at
# build time), the transport's dependencies, and the five daemon executables.
# Included from the root CMakeLists.txt after the libraries exist.

find_program(PROTOC_C_EXECUTABLE NAMES protoc-c REQUIRED)

set(G3N_PROTO_OUT ${CMAKE_BINARY_DIR}/proto)
file(MAKE_DIRECTORY ${G3N_PROTO_OUT})
add_custom_command(
  OUTPUT ${G3N_PROTO_OUT}/g3n.pb-c.c ${G3N_PROTO_OUT}/g3n.pb-c.h
  COMMAND ${PROTOC_C_EXECUTABLE} --c_out=${G3N_PROTO_OUT} -I${CMAKE_SOURCE_DIR}/proto ${CMAKE_SOURCE_DIR}/proto/g3n.proto
  DEPENDS ${CMAKE_SOURCE_DIR}/proto/g3n.proto
  COMMENT "protoc-c proto/g3n.proto"
  VERBATIM)
add_library(g3n_proto STATIC ${G3N_PROTO_OUT}/g3n.pb-c.c)
target_include_directories(g3n_proto PUBLIC ${G3N_PROTO_OUT})
target_link_libraries(g3n_proto PUBLIC PkgConfig::PROTOBUF_C)
target_compile_options(g3n_proto PRIVATE -Wno-unused-parameter)

# common/net (transport, wire) speaks ZeroMQ and the generated protocol: it links
# g3n_proto (common/CMakeLists.txt).

# g3n_daemon(NAME SOURCE LIBRARY): one daemon executable. A role daemon links
# only its own role's library (and what that library needs: g3n_common); the
# linker takes from the static libraries only the objects it refers to
# (tests/daemon_symbols.cmake checks that with nm and ldd).
function(g3n_daemon name source library)
  if(EXISTS ${CMAKE_SOURCE_DIR}/${source})
    add_executable(${name} ${CMAKE_SOURCE_DIR}/${source})
    target_link_libraries(${name} PRIVATE ${library})
  endif()
endfunction()

g3n_daemon(g3n-vision-encoder services/vision_encoder/daemon/main.c g3n_vision)
g3n_daemon(g3n-audio-encoder services/audio_encoder/daemon/main.c g3n_audio)
g3n_daemon(g3n-embedder services/embedder/daemon/main.c g3n_embedder)
g3n_daemon(g3n-decoder services/decoder/daemon/main.c g3n_decoder)
g3n_daemon(g3n-orchestrator orchestrator/daemon/main.c g3n_orchestrator)
