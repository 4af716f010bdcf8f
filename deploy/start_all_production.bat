@echo off
REM Start the stack on Windows, in order, each process in its own window: the inference
REM daemon, then one data source, then the dashboard. Waits for the daemon's /health and
REM the dashboard's first answer instead of fixed sleeps. Close a window to stop its process.
REM   deploy\start_all_production.bat                 (source: the metrics generator)
REM   deploy\start_all_production.bat mongodb         (adapters\mongodb_adapter.py)
REM   deploy\start_all_production.bat elasticsearch   (adapters\elasticsearch_adapter.py)
REM Settings: PYTHON (default .venv\Scripts\python.exe); the rest from .env (see .env.example).
REM Every process reads TFT_API_KEY from .env in its working directory, the repository.
setlocal EnableExtensions
cd /d "%~dp0.."
if "%PYTHON%"=="" set "PYTHON=.venv\Scripts\python.exe"
set "SOURCE=%~1"
if "%SOURCE%"=="" set "SOURCE=generator"
set "DAEMON_URL=http://127.0.0.1:8000"
set "DASHBOARD_URL=http://127.0.0.1:8501"

if not exist "%PYTHON%" (
    echo [ERROR] No python at %PYTHON%: create the venv (see README.md^) or set PYTHON.
    exit /b 1
)
REM Writes TFT_API_KEY to .env once (kept afterwards).
"%PYTHON%" generate_api_key.py || exit /b 1

echo [1/3] Starting the inference daemon on %DAEMON_URL% ...
start "TFT Inference Daemon" cmd /k ""%PYTHON%" tft_inference_daemon.py --port 8000"
call :wait_http "%DAEMON_URL%/health" "the inference daemon" || exit /b 1

echo [2/3] Starting the source: %SOURCE% ...
if /i "%SOURCE%"=="generator" (
    start "TFT Metrics Generator" cmd /k ""%PYTHON%" metrics_generator_daemon.py --daemon-url %DAEMON_URL%"
) else if /i "%SOURCE%"=="mongodb" (
    start "TFT MongoDB Adapter" cmd /k ""%PYTHON%" adapters\mongodb_adapter.py --daemon --config adapters\mongodb_adapter_config.json"
) else if /i "%SOURCE%"=="elasticsearch" (
    start "TFT Elasticsearch Adapter" cmd /k ""%PYTHON%" adapters\elasticsearch_adapter.py --daemon --config adapters\elasticsearch_adapter_config.json"
) else (
    echo [ERROR] Unknown source %SOURCE%: use generator, mongodb or elasticsearch.
    exit /b 1
)

echo [3/3] Starting the dashboard on %DASHBOARD_URL% ...
start "TFT Dashboard" cmd /k ""%PYTHON%" dash_app.py --daemon-url %DAEMON_URL% --port 8501"
call :wait_http "%DASHBOARD_URL%/" "the dashboard" || exit /b 1

echo.
echo ============================================
echo Stack running (source: %SOURCE%)
echo   Inference daemon: %DAEMON_URL%
echo   Dashboard:        %DASHBOARD_URL%
echo Close the three windows to stop it.
echo ============================================
exit /b 0

REM :wait_http URL NAME - until URL answers over HTTP (any status), at most 180 seconds.
:wait_http
set /a tries=0
:wait_http_loop
"%PYTHON%" -c "import sys, urllib.parse as p, http.client as h; u = p.urlsplit(sys.argv[1]); c = h.HTTPConnection(u.hostname, u.port, timeout=5); c.request('GET', u.path); c.getresponse()" %1 >nul 2>&1 && exit /b 0
set /a tries+=1
if %tries% geq 180 (
    echo [ERROR] %~2 did not answer on %~1 within 180 s: see its window.
    exit /b 1
)
timeout /t 1 /nobreak >nul
goto wait_http_loop
