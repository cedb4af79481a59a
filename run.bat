@echo off
rem Set up (first run) and serve Liver Tumor Detection and Analysis on http://127.0.0.1:8000 with waitress.
setlocal
cd /d "%~dp0"

if not exist ".venv\Scripts\python.exe" (
  echo Creating .venv ...
  py -3 -m venv .venv || python -m venv .venv || goto :error
)
".venv\Scripts\python.exe" -m pip install --disable-pip-version-check -q -r requirements.txt || goto :error

if not defined SECRET_KEY if not exist ".secret_key" (
  ".venv\Scripts\python.exe" -c "import secrets; print(secrets.token_urlsafe(50))" > .secret_key
)
if not defined DEBUG set DEBUG=0

".venv\Scripts\python.exe" manage.py migrate --noinput || goto :error
".venv\Scripts\python.exe" manage.py collectstatic --noinput -v0 || goto :error
".venv\Scripts\python.exe" manage.py ensure_admin || goto :error
".venv\Scripts\python.exe" manage.py prepare_model || goto :error

rem The web server and the background worker for whole-series analyses, each restarted if it dies
rem (Tumor\supervise.py; SERIES_WORKER=0 to skip the worker; none with SERIES_QUEUE=celery).
rem Waitress's options (body limits from MAX_UPLOAD_MB / MAX_SERIES_UPLOAD_MB, timeouts, connection limit) are in Tumor\serve.py.
".venv\Scripts\python.exe" -m Tumor.supervise
goto :eof

:error
echo Set-up failed with error %errorlevel%.
exit /b %errorlevel%
