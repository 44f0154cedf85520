using System.CommandLine;
using System.Runtime;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Api;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Runtime;
using Isthmus.ControlPlane.Store;
using Isthmus.Host.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Serilog;
using Serilog.Extensions.Logging;
using Serilog.Formatting.Json;

namespace Isthmus.Host;

/// <summary>
/// The composition root. `run` starts the appliance from its store (importing --config on first start),
/// `check` validates a file, `import` commits a file to a stopped appliance's store.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var config = new Option<FileInfo>("--config") { Description = "Configuration document (JSON) to import when the store is empty" };
        var requiredConfig = new Option<FileInfo>("--config") { Description = "Configuration document (JSON)", Required = true };
        var store = new Option<string>("--store")
        {
            Description = "Configuration store (SQLite)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("ISTHMUS_STORE") ?? ConfigStore.DefaultPath,
        };
        var api = new Option<string>("--api") { Description = "Where the API listens (http:// or https://)", DefaultValueFactory = _ => "http://127.0.0.1:8088" };
        var certificate = new Option<FileInfo?>("--certificate") { Description = "PKCS#12 TLS certificate; with https and none, a self-signed one is generated beside the store" };
        var adminPasswordFile = new Option<FileInfo?>("--admin-password-file") { Description = "First boot: the first admin's password (or ISTHMUS_ADMIN_PASSWORD)" };
        var adminTokenFile = new Option<FileInfo?>("--admin-token-file") { Description = "First boot: an admin API token to create (or ISTHMUS_ADMIN_TOKEN)" };
        var logDir = new Option<string?>("--log-dir") { Description = "Directory for the rolling JSON log (default: none)" };
        var comment = new Option<string>("--comment", "-m") { Description = "Revision comment", DefaultValueFactory = _ => "imported offline" };

        var run = new Command("run", "Run the appliance") { config, store, api, certificate, adminPasswordFile, adminTokenFile, logDir };
        run.SetAction(r => Run(new RunOptions(
            r.GetValue(config), r.GetValue(store)!, r.GetValue(api)!, r.GetValue(certificate),
            ReadSecret(r.GetValue(adminPasswordFile), "ISTHMUS_ADMIN_PASSWORD"), ReadSecret(r.GetValue(adminTokenFile), "ISTHMUS_ADMIN_TOKEN"), r.GetValue(logDir))));

        var check = new Command("check", "Validate a configuration document and list every error") { requiredConfig };
        check.SetAction(r => Check(r.GetValue(requiredConfig)!));

        var import = new Command("import", "Commit a document to the store of a stopped appliance (needed to change ports); restart to apply") { requiredConfig, store, comment };
        import.SetAction(r => Import(r.GetValue(requiredConfig)!, r.GetValue(store)!, r.GetValue(comment)!));

        var root = new RootCommand("Isthmus: per-tenant VLAN/VXLAN edge appliance") { run, check, import };
        return root.Parse(args).Invoke();
    }

    private sealed record RunOptions(FileInfo? Seed, string Store, string Api, FileInfo? Certificate, string? AdminPassword, string? AdminToken, string? LogDir);

    private static string? ReadSecret(FileInfo? file, string variable) =>
        file is not null ? File.ReadAllText(file.FullName).Trim() : Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v : null;

    private static (JsonObject? Raw, IReadOnlyList<Isthmus.DataPlane.Programming.ProgramError> Errors) Read(FileInfo file)
    {
        try
        {
            var parsed = ConfigDocumentJson.Parse(File.ReadAllText(file.FullName));
            var errors = parsed.Errors.ToList();
            if (parsed.Document is { } document)
            {
                errors.AddRange(ConfigValidator.Validate(document, requireAdmin: false));
                errors.AddRange(Isthmus.DataPlane.Programming.SnapshotCompiler.Validate(document.Program));
            }

            return (parsed.Raw, errors);
        }
        catch (IOException e)
        {
            return (null, [new(file.FullName, e.Message)]);
        }
    }

    private static int Check(FileInfo file)
    {
        var (_, errors) = Read(file);
        foreach (var error in errors)
        {
            Console.Error.WriteLine($"{file.Name}: {error}");
        }

        if (errors.Count == 0)
        {
            Console.WriteLine($"{file.Name}: valid");
        }

        return errors.Count == 0 ? 0 : 2;
    }

    private static int Import(FileInfo file, string storePath, string comment)
    {
        var (raw, errors) = Read(file);
        if (raw is null || errors.Count > 0)
        {
            return Check(file);
        }

        using var store = ConfigStore.Open(storePath, TimeProvider.System);
        using var service = new ConfigService(store, TimeProvider.System, NullLogger<ConfigService>.Instance);
        var outcome = service.Commit(raw, comment, null, new Actor(Environment.UserName, "local"));
        foreach (var error in outcome.Errors)
        {
            Console.Error.WriteLine($"{file.Name}: {error}");
        }

        if (outcome.Ok)
        {
            Console.WriteLine($"{storePath}: revision {outcome.Revision!.Id}; restart the appliance to apply it");
        }

        return outcome.Ok ? 0 : 2;
    }

    private static int Run(RunOptions options)
    {
        JsonObject? seed = null;
        if (options.Seed is { } seedFile)
        {
            var (raw, errors) = Read(seedFile);
            if (raw is null || errors.Count > 0)
            {
                return Check(seedFile);
            }

            seed = raw;
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        Log.Logger = CreateLogger(builder.Configuration, options.LogDir);
        try
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(new SerilogLoggerProvider(Log.Logger, dispose: false));
            builder.WebHost.UseUrls(options.Api);
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton<IPortFactory, SocketPortFactory>();
            builder.Services.AddControlPlane(options.Store);
            if (options.Api.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                var path = options.Certificate?.FullName ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(options.Store))!, "api-certificate.pfx");
                var cert = SelfSignedCertificate.LoadOrCreate(path, TimeProvider.System, new SerilogLoggerFactory(Log.Logger).CreateLogger("Isthmus.Tls"));
                builder.WebHost.UseKestrelHttpsConfiguration();
                builder.WebHost.ConfigureKestrel(k => k.ConfigureHttpsDefaults(h => h.ServerCertificate = cert));
            }

            var app = builder.Build();
            // First boot runs before the data plane starts, so the imported revision is the one it applies.
            var firstBoot = app.Services.GetRequiredService<FirstBoot>();
            var seedErrors = firstBoot.Run(new FirstBootOptions(seed, AdminPassword: options.AdminPassword, AdminToken: options.AdminToken));
            if (seedErrors.Count > 0)
            {
                foreach (var error in seedErrors)
                {
                    Log.Error("First boot: {Error}", error.ToString());
                }

                return 2;
            }

            app.UseControlPlane();
            app.MapControlPlane();
            app.Lifetime.ApplicationStarted.Register(() => ThreadPool.QueueUserWorkItem(_ => SettleHeap()));
            app.Run();
            return 0;
        }
        catch (Exception e)
        {
            Log.Fatal(e, "Appliance stopped");
            return 1;
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }

    /// <summary>
    /// One blocking, compacting collection once the appliance is up. Start-up leaves tens of megabytes of
    /// young objects (the snapshot, tables, the web stack); otherwise the first gen0 collection after
    /// start-up promotes them all, a 14–15 ms stop of every thread, the worker included, and it fell during
    /// a workload move in the mobility benchmark (docs/benchmarks.md, "Session 4: mobility"). Paying it here,
    /// before any move or flow, leaves later gen0 collections only the young objects of their own period.
    /// </summary>
    private static void SettleHeap()
    {
        var before = GC.GetTotalPauseDuration();
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        Log.Information("Start-up heap settled: {HeapMb:F1} MB live, {PauseMs:F1} ms pause",
            GC.GetTotalMemory(forceFullCollection: false) / 1048576.0, (GC.GetTotalPauseDuration() - before).TotalMilliseconds);
    }

    /// <summary>
    /// Console plus, with --log-dir, a daily rolling JSON file (Serilog's own JsonFormatter), both
    /// asynchronous. Levels come from configuration (appsettings.json "Serilog" section, or
    /// Serilog__MinimumLevel__Default and the like from the environment).
    /// </summary>
    private static Serilog.Core.Logger CreateLogger(IConfiguration configuration, string? logDir)
    {
        var logger = new LoggerConfiguration()
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft", Serilog.Events.LogEventLevel.Warning)
            .ReadFrom.Configuration(configuration)
            .Enrich.FromLogContext()
            .WriteTo.Async(a => a.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture));
        if (logDir is not null)
        {
            logger.WriteTo.Async(a => a.File(
                new JsonFormatter(renderMessage: true),
                Path.Combine(logDir, "isthmus-.json"),
                rollingInterval: RollingInterval.Day,
                retainedFileCountLimit: 14,
                fileSizeLimitBytes: 64L << 20,
                rollOnFileSizeLimit: true));
        }

        return logger.CreateLogger();
    }
}
