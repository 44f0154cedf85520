using System.Diagnostics;
using System.Reflection;
using System.Runtime.Loader;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Isthmus.Benchmarks;

public static class Program
{
    /// <summary>
    /// BenchmarkDotNet's switcher, plus <c>--spin CLASS.METHOD SECONDS</c>: runs one benchmark method
    /// in a loop (after its global setup) for a profiler to sample, e.g.
    /// <c>DOTNET_PerfMapEnabled=1 perf record -g dotnet run -c Release -- --spin FirewallPipelineBenchmarks.RoutedConntrackNat 10</c>.
    /// </summary>
    public static void Main(string[] args)
    {
        if (args is ["--spin", var target, var seconds])
        {
            Spin(target, double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }

        if (args is ["--ab", var dirA, var dirB, var method, var rounds])
        {
            AbInOneProcess(dirA, dirB, method, int.Parse(rounds, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }

        // Every packet benchmark's table also shows Mpps per core (1000 / mean ns per packet).
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, DefaultConfig.Instance.AddColumn(new MppsColumn()));
    }

    /// <summary>
    /// <c>--ab DIR_A DIR_B CLASS.METHOD ROUNDS</c>: two builds of this benchmark (their bin directories,
    /// e.g. main before and after a change) loaded side by side in this process, each in its own
    /// load context, after 3 s of warm-up run in alternating 100 ms slices (the order flips every
    /// round), so both see the same machine load. Prints min / p25 / median ns per packet for each
    /// and the median of the paired B/A ratios. On a shared machine this pairing is what makes an A/B
    /// readable; loading the same build twice gives a ratio within about ±4 % of 1.
    /// </summary>
    private static void AbInOneProcess(string dirA, string dirB, string target, int rounds)
    {
        string[] dirs = [Path.GetFullPath(dirA), Path.GetFullPath(dirB)];
        var runs = new Func<int>[2];
        var dot = target.LastIndexOf('.');
        for (var k = 0; k < 2; k++)
        {
            var context = new BuildContext(dirs[k]);
            var assembly = context.LoadFromAssemblyPath(Path.Combine(dirs[k], "Appliance.Benchmarks.dll"));
            var type = assembly.GetType(typeof(Program).Namespace + "." + target[..dot], throwOnError: true)!;
            var instance = Activator.CreateInstance(type)!;
            type.GetMethods().SingleOrDefault(m => m.GetCustomAttributes().Any(a => a.GetType().Name == nameof(BenchmarkDotNet.Attributes.GlobalSetupAttribute)))?.Invoke(instance, null);
            runs[k] = type.GetMethod(target[(dot + 1)..])!.CreateDelegate<Func<int>>(instance);
        }

        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 3)
        {
            runs[0]();
            runs[1]();
        }

        var perPacket = new double[2][];
        perPacket[0] = new double[rounds];
        perPacket[1] = new double[rounds];
        for (var r = 0; r < rounds; r++)
        {
            for (var n = 0; n < 2; n++)
            {
                var k = (r & 1) == 0 ? n : 1 - n;
                var clock = Stopwatch.StartNew();
                long calls = 0;
                while (clock.Elapsed.TotalMilliseconds < 100)
                {
                    for (var i = 0; i < 20; i++)
                    {
                        runs[k]();
                    }

                    calls += 20;
                }

                perPacket[k][r] = clock.Elapsed.TotalNanoseconds / calls / RoutedBench.Batch;
            }
        }

        for (var k = 0; k < 2; k++)
        {
            var sorted = perPacket[k].Order().ToArray();
            Console.WriteLine($"{(k == 0 ? "A" : "B")} {target}: min {sorted[0]:F1} p25 {sorted[rounds / 4]:F1} median {sorted[rounds / 2]:F1} ns/packet ({dirs[k]})");
        }

        var ratios = perPacket[1].Zip(perPacket[0], (b, a) => b / a).Order().ToArray();
        Console.WriteLine($"B faster in {perPacket[1].Zip(perPacket[0]).Count(x => x.First < x.Second)}/{rounds} paired slices; median paired B/A {ratios[rounds / 2]:F3}");
    }

    /// <summary>Resolves a build's own assemblies from its directory; the framework is shared.</summary>
    private sealed class BuildContext(string directory) : AssemblyLoadContext
    {
        protected override Assembly? Load(AssemblyName name)
        {
            var path = Path.Combine(directory, name.Name + ".dll");
            return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
        }
    }

    private static void Spin(string target, double seconds)
    {
        var dot = target.LastIndexOf('.');
        var type = typeof(Program).Assembly.GetTypes().Single(t => t.Name == target[..dot]);
        var instance = Activator.CreateInstance(type)!;
        var setup = type.GetMethods().SingleOrDefault(m => m.GetCustomAttributes(typeof(BenchmarkDotNet.Attributes.GlobalSetupAttribute), false).Length > 0);
        setup?.Invoke(instance, null);
        var run = type.GetMethod(target[(dot + 1)..])!.CreateDelegate<Func<int>>(instance);
        var clock = Stopwatch.StartNew();
        long calls = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            for (var i = 0; i < 1000; i++)
            {
                run();
            }

            calls += 1000;
        }

        Console.WriteLine($"{target}: {calls} calls in {clock.Elapsed.TotalSeconds:F1} s = {clock.Elapsed.TotalNanoseconds / calls:F0} ns per call");
    }
}
