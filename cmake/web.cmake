# web.cmake: the chat page (web/) built and embedded into the gemma3
# library, so `gemma-chat serve` answers / with it and needs no files
# beside the binary.
#
# G3_WEB=ON (default): when web/src, web/build.mjs or the lock change, the
# build runs `npm ci --prefix web` if web/node_modules is missing or older
# than the lock (cmake/web_npm_ci.cmake), then `node web/build.mjs`
# (esbuild), then cmake/web_embed.cmake turns the output into a C file.
# G3_WEB=OFF, or no node/npm at configure time: an empty table, and / says
# the binary was built without the page.
option(G3_WEB "Embed the web chat page (needs node and npm at build time)" ON)

set(G3_WEB_C "${CMAKE_BINARY_DIR}/generated/web_assets_data.c")
set(G3_WEB_ENABLED OFF)
if(G3_WEB)
  find_program(G3_NODE node)
  find_program(G3_NPM npm)
  if(G3_NODE AND G3_NPM)
    set(G3_WEB_ENABLED ON)
  else()
    message(WARNING "G3_WEB: node or npm not found, so this build has no web chat page: `gemma-chat serve` "
                    "answers / with a note saying so (the APIs work). Install nodejs and npm "
                    "(scripts/install-deps.sh), or configure with -DG3_WEB=OFF to silence this.")
  endif()
endif()

if(G3_WEB_ENABLED)
  set(web_dir "${CMAKE_SOURCE_DIR}/web")
  set(web_out "${CMAKE_BINARY_DIR}/web-dist")
  file(GLOB G3_WEB_SOURCES CONFIGURE_DEPENDS "${web_dir}/src/*")
  add_custom_command(OUTPUT "${G3_WEB_C}"
    COMMAND "${CMAKE_COMMAND}" -DNPM=${G3_NPM} -DWEB_DIR=${web_dir} -P "${CMAKE_SOURCE_DIR}/cmake/web_npm_ci.cmake"
    COMMAND "${CMAKE_COMMAND}" -E rm -rf "${web_out}"
    COMMAND "${G3_NODE}" "${web_dir}/build.mjs" "${web_out}"
    COMMAND "${CMAKE_COMMAND}" -DIN_DIR=${web_out} -DOUT=${G3_WEB_C} -P "${CMAKE_SOURCE_DIR}/cmake/web_embed.cmake"
    DEPENDS ${G3_WEB_SOURCES} "${web_dir}/build.mjs" "${web_dir}/package.json" "${web_dir}/package-lock.json"
            "${CMAKE_SOURCE_DIR}/cmake/web_embed.cmake" "${CMAKE_SOURCE_DIR}/cmake/web_npm_ci.cmake"
    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
    COMMENT "Building the web chat page (web/: npm ci when needed, esbuild) and embedding it"
    VERBATIM)
  message(STATUS "G3_WEB: the web chat page is built from web/ and embedded")
else()
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/generated")
  execute_process(COMMAND "${CMAKE_COMMAND}" -DOUT=${G3_WEB_C} -P "${CMAKE_SOURCE_DIR}/cmake/web_embed.cmake"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "G3_WEB: cannot write ${G3_WEB_C}")
  endif()
endif()
target_sources(gemma3 PRIVATE "${G3_WEB_C}")
