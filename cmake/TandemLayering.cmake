# The architecture's dependency rules, checked at configure time (docs/architecture.md, "Layers
# and dependencies"). Two checks, both failing the configure step with what broke them:
#   1. includes: a folder's sources include only headers of the folders allowed below;
#      `file:` entries allow single headers of a folder that is otherwise off limits;
#   2. links: the router's libraries never link the kernels or the model runtime
#      (tandem_check_no_link, called after the targets exist).

# folder=folders (or folder/file.h), comma-separated, that its sources may include besides itself.
set(_TANDEM_LAYERS
  "common=proto"
  "proto=common,slo,model/sampling_params.h"
  "tokenizer=common"
  "kernels=common"
  "slo=common"
  "model=common,kernels"
  "kv_transfer=common,kernels"
  "engine=common,slo,model"
  "node=common,proto,slo,kernels,model,engine,kv_transfer"
  "prefill_node=common,proto,slo,kernels,model,engine,kv_transfer,node"
  "decode_node=common,proto,slo,kernels,model,engine,kv_transfer,node"
  "scheduler=common,proto,slo,engine/request_rules.h,model/model_config.h,model/sampling_params.h,model/kv_blocks.h,model/block_hash.h"
  "frontend=common,slo,tokenizer,scheduler,model/model_config.h,model/sampling_params.h"
  "worker=common,slo,kernels,model,engine,scheduler"
  "loadgen=common,tokenizer,slo/slo_config.h"
  "sim=common,slo,model,engine,scheduler,loadgen"
)

function(tandem_check_layering)
  set(_errors "")
  foreach(_rule ${_TANDEM_LAYERS})
    string(REGEX REPLACE "=.*" "" _folder "${_rule}")
    string(REGEX REPLACE "^[^=]*=" "" _allowed "${_rule}")
    string(REPLACE "," ";" _allowed "${_allowed}")
    file(GLOB_RECURSE _sources ${CMAKE_SOURCE_DIR}/${_folder}/*.h ${CMAKE_SOURCE_DIR}/${_folder}/*.cc
         ${CMAKE_SOURCE_DIR}/${_folder}/*.cu ${CMAKE_SOURCE_DIR}/${_folder}/*.cuh)
    foreach(_src ${_sources})
      file(STRINGS ${_src} _includes REGEX "^#include \"[a-z_]+/")
      foreach(_line ${_includes})
        string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" _header "${_line}")
        string(REGEX REPLACE "/.*" "" _target_folder "${_header}")
        if(_target_folder STREQUAL _folder)
          continue()
        endif()
        list(FIND _allowed ${_target_folder} _folder_ok)
        list(FIND _allowed ${_header} _file_ok)
        if(_folder_ok EQUAL -1 AND _file_ok EQUAL -1)
          file(RELATIVE_PATH _rel ${CMAKE_SOURCE_DIR} ${_src})
          string(APPEND _errors "\n  ${_rel} includes ${_header} (${_folder}/ may include: ${_allowed})")
        endif()
      endforeach()
    endforeach()
  endforeach()
  if(_errors)
    message(FATAL_ERROR "Layering violations (see docs/architecture.md):${_errors}")
  endif()
endfunction()

# Fails when `target` links any of the `forbidden` targets, directly or through others.
function(tandem_check_no_link target)
  set(_forbidden ${ARGN})
  set(_queue ${target})
  set(_seen "")
  while(_queue)
    list(POP_FRONT _queue _t)
    if(NOT TARGET ${_t} OR _t IN_LIST _seen)
      continue()
    endif()
    list(APPEND _seen ${_t})
    get_target_property(_libs ${_t} LINK_LIBRARIES)
    get_target_property(_ilibs ${_t} INTERFACE_LINK_LIBRARIES)
    foreach(_lib ${_libs} ${_ilibs})
      if(_lib MATCHES "NOTFOUND$" OR _lib MATCHES "^\\$<")
        continue()
      endif()
      if(_lib IN_LIST _forbidden)
        message(FATAL_ERROR "${target} links ${_lib} (through ${_t}): the router's libraries must not link the "
                            "kernels or the model runtime (docs/architecture.md)")
      endif()
      list(APPEND _queue ${_lib})
    endforeach()
  endwhile()
endfunction()
