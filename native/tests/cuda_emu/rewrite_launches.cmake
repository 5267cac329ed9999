# Host emulation of a CUDA source (decode_emu_tests.cpp says why): rewrites its kernel launches,
#   kernel<<<grid, block, shmem, stream>>>(args);  ->  ::emu::launch(grid, block, shmem, stream, [&] { kernel(args); });
# and nothing else. With CONTROL=ON the warp's butterfly sum is replaced by a sequential one (the check's control).
#   cmake -DIN=expert_ffn_decode.cu -DOUT=out.cpp [-DCONTROL=ON] -P rewrite_launches.cmake
file(READ "${IN}" src)
string(REGEX MATCHALL "<<<" launches "${src}")
list(LENGTH launches n)
if(n EQUAL 0)
  message(FATAL_ERROR "rewrite_launches: no kernel launch in ${IN}")
endif()
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_]+>)?)<<<([^>]*)>>>\\(([^;]*)\\);" "::emu::launch(\\3, [&] { \\1(\\4); });" out "${src}")
string(FIND "${out}" "<<<" left)
if(NOT left EQUAL -1)
  message(FATAL_ERROR "rewrite_launches: a launch of ${IN} was not rewritten")
endif()
if(CONTROL)
  string(REPLACE "detail::warp_sum(" "detail::emu_seq_warp_sum(" out "${out}")
  string(REPLACE "#include \"moe/gpu_order_math.h\"\n" "#include \"moe/gpu_order_math.h\"\n#include \"control_warp_sum.h\"\n" out "${out}")
endif()
file(WRITE "${OUT}" "// Generated from ${IN} by rewrite_launches.cmake: kernel launches run on the host emulation.\n${out}")
