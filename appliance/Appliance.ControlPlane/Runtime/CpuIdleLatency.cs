using System.Runtime.InteropServices;

namespace Isthmus.ControlPlane.Runtime;

/// <summary>
/// <c>dataPlane.cpuIdleLatencyUs</c>: a CPU latency request through the kernel's PM QoS interface (the way tuned's
/// network-latency profile and DPDK applications keep CPUs out of deep idle states). While the appliance holds
/// <c>/dev/cpu_dma_latency</c> open with a value written to it, the cpuidle governor only picks idle states whose exit
/// latency is at most that value; 0 leaves only polling (a vCPU that never halts, so waking the worker or the mobility
/// loop costs no host round trip). The request lasts exactly as long as the file descriptor: it is held for the
/// appliance's lifetime and dropped by <see cref="Dispose"/> (or the process's exit).
/// </summary>
/// <remarks>
/// Fails soft: a device that is absent or not permitted (not root, a container without it) leaves the CPUs as they
/// were; the reason is kept in <see cref="Status"/>, counted in <see cref="CpuIdleLatencyStatus.Failures"/> and logged
/// by the caller. The device path is injectable so tests hold a file instead. Thread-safe (one lock; rare calls).
/// </remarks>
public sealed class CpuIdleLatency(string devicePath = CpuIdleLatency.DefaultDevice) : IDisposable
{
    public const string DefaultDevice = "/dev/cpu_dma_latency";

    /// <summary>The largest value accepted in the configuration (1 s): above every idle state's exit latency.</summary>
    public const int MaxMicroseconds = 1_000_000;

    private readonly Lock _gate = new();
    private FileStream? _held;
    private int? _requested;
    private int? _heldValue;
    private string? _lastError;
    private long _failures;

    public string DevicePath => devicePath;

    /// <summary>What is asked and what is held now.</summary>
    public CpuIdleLatencyStatus Status
    {
        get
        {
            lock (_gate)
            {
                var state = _requested is null ? "off" : _heldValue is not null ? "held" : "unavailable";
                return new CpuIdleLatencyStatus(_requested, _heldValue, state, devicePath, _failures, _lastError);
            }
        }
    }

    /// <summary>
    /// Makes the request <paramref name="microseconds"/> (null: none). The same value again does nothing; another value is
    /// written on the held descriptor (the kernel updates the request in place); null closes it. Returns false when the
    /// request could not be made (see <see cref="Status"/>).
    /// </summary>
    public bool Apply(int? microseconds)
    {
        lock (_gate)
        {
            _requested = microseconds;
            if (microseconds is not { } value)
            {
                Release();
                return true;
            }

            if (_heldValue == value)
            {
                return true;
            }

            try
            {
                _held ??= new FileStream(devicePath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
                if (_held.CanSeek)
                {
                    _held.Position = 0; // a file standing in for the device holds the last value
                }

                // The kernel reads a native 32-bit signed integer when exactly four bytes are written.
                Span<byte> bytes = stackalloc byte[sizeof(int)];
                MemoryMarshal.Write(bytes, in value);
                _held.Write(bytes);
                _held.Flush();
                _heldValue = value;
                _lastError = null;
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                Release();
                _failures++;
                _lastError = e is FileNotFoundException or DirectoryNotFoundException
                    ? $"{devicePath} is absent (no PM QoS interface)"
                    : e is UnauthorizedAccessException ? $"{devicePath} is not permitted (needs root): {e.Message}" : $"{devicePath}: {e.Message}";
                return false;
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _requested = null;
            Release();
        }
    }

    private void Release()
    {
        _held?.Dispose(); // closing the descriptor removes the request
        _held = null;
        _heldValue = null;
    }
}

/// <param name="Requested">The configured value (µs); null = off.</param>
/// <param name="Held">The value the held descriptor carries; null = no request in force.</param>
/// <param name="State">off, held, or unavailable (requested but the device could not be used: <paramref name="LastError"/>).</param>
/// <param name="Failures">Requests that could not be made since start.</param>
public sealed record CpuIdleLatencyStatus(int? Requested, int? Held, string State, string Device, long Failures, string? LastError);
