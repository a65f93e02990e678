# web_npm_ci.cmake: `npm ci` in web/ when its node_modules is missing or
# older than the lock file (cmake -DNPM=npm -DWEB_DIR=web -P web_npm_ci.cmake).
# npm ci writes node_modules/.package-lock.json last, so its age says when
# the last complete install was.
cmake_minimum_required(VERSION 3.18)
set(marker "${WEB_DIR}/node_modules/.package-lock.json")
set(lock "${WEB_DIR}/package-lock.json")
if(EXISTS "${marker}" AND NOT "${lock}" IS_NEWER_THAN "${marker}")
  return()
endif()
message(STATUS "web: npm ci (installing the page's pinned packages from web/package-lock.json)")
execute_process(COMMAND "${NPM}" ci --prefix "${WEB_DIR}" --no-audit --no-fund
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "web: 'npm ci --prefix web' failed (no network to the npm registry?). "
                      "Configure with -DG3_WEB=OFF to build without the web page.")
endif()
