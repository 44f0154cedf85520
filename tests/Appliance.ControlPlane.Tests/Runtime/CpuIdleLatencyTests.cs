using System.Buffers.Binary;
using System.Diagnostics;
using Isthmus.ControlPlane.Runtime;
using Isthmus.ControlPlane.Tests.Support;

namespace Isthmus.ControlPlane.Tests.Runtime;

/// <summary>
/// dataPlane.cpuIdleLatencyUs: the PM QoS request is a 32-bit value written to the device and held as long as the
/// descriptor stays open. A file (or a FIFO) stands in for /dev/cpu_dma_latency; one root test uses the real device.
/// </summary>
public sealed class CpuIdleLatencyTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_value_is_written_as_a_native_int32_and_the_descriptor_held_until_released()
    {
        var path = _dir.File("cpu_dma_latency");
        File.WriteAllBytes(path, []);
        using var qos = new CpuIdleLatency(path);

        Assert.True(qos.Apply(0));
        Assert.Equal(BitConverter.GetBytes(0), File.ReadAllBytes(path));
        Assert.Equal(1, OpenDescriptors(path));
        Assert.Equal(new CpuIdleLatencyStatus(0, 0, "held", path, 0, null), qos.Status);

        // A new value goes through the same descriptor (the kernel updates the request in place).
        Assert.True(qos.Apply(25));
        Assert.Equal(BitConverter.GetBytes(25), File.ReadAllBytes(path));
        Assert.Equal(1, OpenDescriptors(path));
        Assert.Equal(25, qos.Status.Held);

        // The same value again writes nothing.
        File.WriteAllBytes(path, [9, 9, 9, 9]);
        Assert.True(qos.Apply(25));
        Assert.Equal([9, 9, 9, 9], File.ReadAllBytes(path));

        Assert.True(qos.Apply(null));
        Assert.Equal(0, OpenDescriptors(path));
        Assert.Equal(new CpuIdleLatencyStatus(null, null, "off", path, 0, null), qos.Status);

        Assert.True(qos.Apply(3));
        Assert.Equal(1, OpenDescriptors(path));
        qos.Dispose();
        Assert.Equal(0, OpenDescriptors(path));
        Assert.Equal("off", qos.Status.State);
    }

    [Fact]
    public async Task Through_a_fifo_the_reader_gets_four_bytes_and_end_of_file_only_when_the_request_is_dropped()
    {
        var path = _dir.File("fifo");
        using (var mkfifo = Process.Start("mkfifo", path))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // Opening a FIFO blocks until both ends are open: the reader opens first, on the thread pool.
        var reader = Task.Run(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0));
        using var qos = new CpuIdleLatency(path);
        Assert.True(qos.Apply(0));
        await using var stream = await reader;
        var value = new byte[4];
        await stream.ReadExactlyAsync(value);
        Assert.Equal(0, BinaryPrimitives.ReadInt32LittleEndian(value));

        // Held: no end of file while the request stands. Changing it writes again on the same descriptor.
        var next = stream.ReadAsync(new byte[4]).AsTask();
        Assert.False(next.IsCompleted);
        Assert.True(qos.Apply(50));
        Assert.Equal(4, await next);

        qos.Dispose();
        Assert.Equal(0, await stream.ReadAsync(new byte[4]));
    }

    [Fact]
    public void An_absent_device_fails_soft_with_its_reason_counted()
    {
        var path = _dir.File("no-such-device");
        using var qos = new CpuIdleLatency(path);

        Assert.False(qos.Apply(0));
        var status = qos.Status;
        Assert.Equal((0, (int?)null, "unavailable", 1L), (status.Requested!.Value, status.Held, status.State, status.Failures));
        Assert.Contains("absent", status.LastError, StringComparison.Ordinal);

        // Every attempt is counted; turning it off clears the state but keeps the count.
        Assert.False(qos.Apply(5));
        Assert.Equal(2, qos.Status.Failures);
        Assert.True(qos.Apply(null));
        Assert.Equal(("off", 2L), (qos.Status.State, qos.Status.Failures));
    }

    [Fact]
    public void A_path_that_cannot_be_written_fails_soft()
    {
        using var qos = new CpuIdleLatency(_dir.Path); // a directory: never opened for writing, root or not

        Assert.False(qos.Apply(0));
        Assert.Equal(("unavailable", 1L), (qos.Status.State, qos.Status.Failures));
        Assert.NotNull(qos.Status.LastError);
    }

    /// <summary>
    /// The real device: while the request of 0 µs is held the kernel's CPU latency target (read back from the device) is
    /// 0, and no CPU enters an idle state with a non-zero exit latency (the cpuidle usage counters of those states stay
    /// put). Root only; CI=true fails without root or without the device.
    /// </summary>
    [Fact]
    public void As_root_the_device_target_is_zero_and_no_cpu_halts_while_held()
    {
        var ci = Environment.GetEnvironmentVariable("CI") == "true";
        var missing = !IsRoot() ? "root" : !File.Exists(CpuIdleLatency.DefaultDevice) ? CpuIdleLatency.DefaultDevice : null;
        if (missing is not null)
        {
            Assert.False(ci, "the PM QoS test needs " + missing);
            return;
        }

        using var qos = new CpuIdleLatency();
        Assert.True(qos.Apply(0), qos.Status.LastError);
        Assert.Equal(0, ReadDeviceTarget());

        // The kernel wakes every idle CPU when the target changes; a CPU halted at that moment counts its entry as it wakes.
        Thread.Sleep(50);
        var before = HaltingStateEntries();
        Thread.Sleep(300); // idle time: every CPU would halt if it could
        var after = HaltingStateEntries();
        Assert.Equal(before, after);

        qos.Dispose();
        Assert.Equal("off", qos.Status.State);
    }

    private static int ReadDeviceTarget()
    {
        using var device = new FileStream(CpuIdleLatency.DefaultDevice, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
        var value = new byte[4];
        device.ReadExactly(value);
        return BitConverter.ToInt32(value);
    }

    /// <summary>Per CPU and idle state with an exit latency above 0 µs: how often it was entered (empty without cpuidle).</summary>
    private static Dictionary<string, long> HaltingStateEntries()
    {
        var entries = new Dictionary<string, long>(StringComparer.Ordinal);
        var states = Directory.EnumerateDirectories("/sys/devices/system/cpu", "cpu*")
            .Select(cpu => Path.Combine(cpu, "cpuidle"))
            .Where(Directory.Exists)
            .SelectMany(cpuidle => Directory.EnumerateDirectories(cpuidle, "state*"));
        foreach (var state in states)
        {
            if (long.Parse(File.ReadAllText(Path.Combine(state, "latency")).Trim(), System.Globalization.CultureInfo.InvariantCulture) > 0)
            {
                entries[state] = long.Parse(File.ReadAllText(Path.Combine(state, "usage")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return entries;
    }

    private static bool IsRoot()
    {
        using var id = Process.Start(new ProcessStartInfo("id", "-u") { RedirectStandardOutput = true })!;
        var output = id.StandardOutput.ReadToEnd();
        id.WaitForExit();
        return output.Trim() == "0";
    }

    private static int OpenDescriptors(string path) =>
        new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos()
            .Count(fd => string.Equals(SafeLinkTarget(fd), path, StringComparison.Ordinal));

    private static string? SafeLinkTarget(FileSystemInfo fd)
    {
        try
        {
            return fd.LinkTarget;
        }
        catch (IOException)
        {
            return null; // closed while listing
        }
    }
}
