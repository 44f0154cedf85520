using System.Globalization;

namespace Isthmus.Integration.Tests;

/// <summary>
/// Brings the lab up once for the whole collection (appliance/lab/lab.sh up --detach) and down at the end.
/// Capability rule: without root or iproute2 the lab cannot run; with CI=true that is a failure, otherwise
/// every test returns early.
/// </summary>
public sealed class LabFixture : IDisposable
{
    public LabFixture()
    {
        MissingCapability = CheckCapability();
        if (MissingCapability is not null)
        {
            return;
        }

        if (External)
        {
            return; // a lab someone brought up by hand (lab.sh up --detach): use it, leave it up
        }

        // One lab per machine: hold the lab lock (flock, as lab.sh and tests/run.sh take it) for the
        // collection's lifetime, unless our parent (tests/run.sh) already holds it.
        if (Environment.GetEnvironmentVariable("ISTHMUS_LAB_LOCKED") != "1")
        {
            _lock = AcquireLock(TimeSpan.FromMinutes(10));
            if (_lock is null)
            {
                StartError = "another run holds /run/isthmus-lab.lock (a lab or test run on this machine) for more than 10 minutes";
                return;
            }
        }

        var args = new List<string> { Lab.LabScript, "up", "--detach" };
        if (Environment.GetEnvironmentVariable("ISTHMUS_LAB_NO_BUILD") == "1")
        {
            args.Add("--no-build");
        }

        StartedAt = DateTime.UtcNow;
        var r = Lab.RunAsync("bash", args, TimeSpan.FromMinutes(8), LockedEnv).GetAwaiter().GetResult();
        UpOutput = r.ToString();
        if (!r.Ok)
        {
            StartError = $"lab.sh up --detach failed after {(DateTime.UtcNow - StartedAt).TotalSeconds.ToString("F0", CultureInfo.InvariantCulture)}s:\n{r}";
        }
    }

    /// <summary>ISTHMUS_LAB_EXTERNAL=1: the lab is already up; neither start nor stop it.</summary>
    public static bool External => Environment.GetEnvironmentVariable("ISTHMUS_LAB_EXTERNAL") == "1";

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why the lab cannot run on this machine, or null.</summary>
    public string? MissingCapability { get; }

    /// <summary>Why lab.sh up failed, or null.</summary>
    public string? StartError { get; }

    public string UpOutput { get; } = "";

    public DateTime StartedAt { get; }

    /// <summary>
    /// Call first in every test: false means "return early" (no capability, not in CI). Fails the test when
    /// the capability is missing in CI or when the lab did not come up.
    /// </summary>
    public bool Ready()
    {
        if (MissingCapability is not null)
        {
            if (InCi)
            {
                Assert.Fail($"CI=true and the integration lab cannot run: {MissingCapability}");
            }

            return false;
        }

        if (StartError is not null)
        {
            Assert.Fail(StartError);
        }

        return true;
    }

    private static string? CheckCapability()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "not root (run: sudo tests/run.sh)";
        }

        string[] dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]).ToArray();
        if (!dirs.Any(d => File.Exists(Path.Combine(d, "ip"))))
        {
            return "iproute2's ip is missing (tests/run.sh installs it)";
        }

        return File.Exists(Lab.LabScript) ? null : $"{Lab.LabScript} is missing";
    }

    public void Dispose()
    {
        if (MissingCapability is null && !External)
        {
            Lab.RunAsync("bash", [Lab.LabScript, "down"], TimeSpan.FromMinutes(1), LockedEnv).GetAwaiter().GetResult();
        }

        _lock?.Dispose();
    }

    private static readonly Dictionary<string, string> LockedEnv = new() { ["ISTHMUS_LAB_LOCKED"] = "1" };

    private readonly FileStream? _lock;

    private static FileStream? AcquireLock(TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                // On Unix, FileShare.None takes flock(LOCK_EX), the same lock as flock(1) in the scripts.
                return new FileStream("/run/isthmus-lab.lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < until)
            {
                Thread.Sleep(1000);
            }
            catch (IOException)
            {
                return null;
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class LabCollection : ICollectionFixture<LabFixture>
{
    public const string Name = "lab";
}
