# Install the stack as Windows services with NSSM (https://nssm.cc), then start them in
# order, waiting for the daemon's /health. Run in an elevated PowerShell from anywhere:
#   powershell -ExecutionPolicy Bypass -File deploy\install_services_nssm.ps1 -Source mongodb
#   ... -Source elasticsearch | -Source generator (development) ; -Python C:\path\python.exe
# Safe to run again: existing services are updated, not duplicated.
# Services: TFTInferenceDaemon; TFTMongoDBAdapter, TFTElasticsearchAdapter or
# TFTMetricsGenerator (depend on the daemon); TFTDashboard (depends on the daemon).
# Each process reads TFT_API_KEY from .env in the install folder (generate_api_key.py writes
# it once), so the key never lands in the service's registry entry. Logs: state\logs\.
# The services run as LocalSystem unless you set another account:
#   nssm set TFTInferenceDaemon ObjectName .\tft <password>
param(
    [ValidateSet("mongodb", "elasticsearch", "generator")]
    [string]$Source = "mongodb",
    [string]$InstallDir = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path,
    [string]$Python = "",
    [string]$Nssm = "nssm"
)
$ErrorActionPreference = "Stop"
if (-not $Python) { $Python = Join-Path $InstallDir ".venv\Scripts\python.exe" }
if (-not (Test-Path $Python)) { throw "No python at ${Python}: create the venv or pass -Python" }
$LogDir = Join-Path $InstallDir "state\logs"
New-Item -ItemType Directory -Force -Path $LogDir | Out-Null

# Run nssm; stop on failure.
function Invoke-Nssm {
    & $Nssm @args
    if ($LASTEXITCODE -ne 0) { throw "nssm $($args -join ' ') failed ($LASTEXITCODE)" }
}

# Install (or update) one service running "python <Arguments>" from the install folder.
function Install-TftService([string]$Name, [string]$Arguments, [string]$DependsOn) {
    if (-not (Get-Service -Name $Name -ErrorAction SilentlyContinue)) {
        Invoke-Nssm install $Name $Python
    }
    Invoke-Nssm set $Name Application $Python
    Invoke-Nssm set $Name AppParameters $Arguments
    Invoke-Nssm set $Name AppDirectory $InstallDir
    Invoke-Nssm set $Name AppStdout (Join-Path $LogDir "$Name.log")
    Invoke-Nssm set $Name AppStderr (Join-Path $LogDir "$Name.log")
    Invoke-Nssm set $Name AppExit Default Restart
    Invoke-Nssm set $Name AppRestartDelay 10000
    Invoke-Nssm set $Name Start SERVICE_AUTO_START
    if ($DependsOn) { Invoke-Nssm set $Name DependOnService $DependsOn }
    Write-Host "installed $Name"
}

# Until the URL answers (any HTTP status), at most $Seconds.
function Wait-Http([string]$Url, [int]$Seconds = 180) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-Date) -lt $deadline) {
        try { Invoke-WebRequest -Uri $Url -UseBasicParsing -TimeoutSec 5 | Out-Null; return }
        catch { if ($_.Exception.Response) { return } }  # an HTTP error status: it answered
        Start-Sleep -Seconds 1
    }
    throw "$Url did not answer within $Seconds s: see $LogDir"
}

Push-Location $InstallDir
try {
    & $Python (Join-Path $InstallDir "generate_api_key.py")
    if ($LASTEXITCODE -ne 0) { throw "generate_api_key.py failed" }

    $daemon = "TFTInferenceDaemon"
    Install-TftService $daemon "tft_inference_daemon.py --port 8000" ""
    switch ($Source) {
        "mongodb" {
            $sourceName = "TFTMongoDBAdapter"
            $sourceArgs = "adapters\mongodb_adapter.py --daemon --config adapters\mongodb_adapter_config.json"
        }
        "elasticsearch" {
            $sourceName = "TFTElasticsearchAdapter"
            $sourceArgs = "adapters\elasticsearch_adapter.py --daemon --config adapters\elasticsearch_adapter_config.json"
        }
        "generator" {
            $sourceName = "TFTMetricsGenerator"
            $sourceArgs = "metrics_generator_daemon.py --daemon-url http://127.0.0.1:8000"
        }
    }
    Install-TftService $sourceName $sourceArgs $daemon
    Install-TftService "TFTDashboard" "dash_app.py --port 8501" $daemon

    # Start in order: the daemon first, its clients once it answers.
    Invoke-Nssm start $daemon
    Wait-Http "http://127.0.0.1:8000/health"
    Invoke-Nssm start $sourceName
    Invoke-Nssm start "TFTDashboard"
    Wait-Http "http://127.0.0.1:8501/"
    Write-Host "Running. Dashboard: http://127.0.0.1:8501  Daemon: http://127.0.0.1:8000"
    Write-Host "Remove: nssm stop <name>; nssm remove <name> confirm"
}
finally {
    Pop-Location
}
