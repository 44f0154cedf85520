using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Isthmus.ControlPlane.Api;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Auth;
using Isthmus.ControlPlane.Runtime;
using Isthmus.ControlPlane.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>
/// The appliance's API on a test server, composed by the same three calls as the host
/// (AddControlPlane, UseControlPlane, MapControlPlane), with in-memory ports. The store is seeded
/// before start-up with <see cref="Documents.Lab"/> (unless <c>seed</c> is null), so start-up itself
/// applies the last committed revision.
/// </summary>
public sealed class ApplianceFactory : WebApplicationFactory<ApplianceFactory>
{
    private readonly TempDirectory _dir = new();

    private readonly FirstBootOptions? _firstBoot;

    /// <param name="firstBoot">Runs first boot before the data plane starts, as the host does.</param>
    internal ApplianceFactory(JsonObject? seed, FirstBootOptions? firstBoot = null)
    {
        _firstBoot = firstBoot;
        StorePath = _dir.File("config.db");
        CpuDmaLatencyPath = _dir.File("cpu_dma_latency");
        File.WriteAllBytes(CpuDmaLatencyPath, []);
        if (seed is not null)
        {
            using var store = ConfigStore.Open(StorePath, TimeProvider.System);
            using var service = new ConfigService(store, TimeProvider.System, NullLogger<ConfigService>.Instance);
            var outcome = service.Commit(seed, "seed", null, new Actor("test", "local"));
            Assert.True(outcome.Ok, string.Join("\n", outcome.Errors));
        }
    }

    public ApplianceFactory()
        : this(Documents.Lab())
    {
    }

    public string StorePath { get; }

    public MemoryPortFactory Ports { get; } = new();

    /// <summary>A file standing in for /dev/cpu_dma_latency (dataPlane.cpuIdleLatencyUs): tests never touch the device.</summary>
    public string CpuDmaLatencyPath { get; }

    public CollectingLoggerProvider Logs { get; } = new();

    public DataPlaneRuntime Runtime => Services.GetRequiredService<DataPlaneRuntime>();

    public HttpClient Admin() => WithBearer(Documents.AdminToken);

    public HttpClient Reader() => WithBearer(Documents.ReaderToken);

    public HttpClient WithBearer(string token)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public HttpClient WithBasic(string user, string password)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        return client;
    }

    protected override IHostBuilder CreateHostBuilder() =>
        new HostBuilder().ConfigureWebHost(web => web
            .ConfigureServices(services =>
            {
                services.AddSingleton(TimeProvider.System);
                services.AddSingleton<IPortFactory>(Ports);
                services.AddLogging(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Information));
                services.AddRouting();
                if (_firstBoot is { } options)
                {
                    // Hosted services start in registration order: this one before the data plane.
                    services.AddHostedService(sp => new FirstBootService(sp.GetRequiredService<FirstBoot>(), options));
                }

                services.AddSingleton(new CpuIdleLatency(CpuDmaLatencyPath));
                services.AddControlPlane(StorePath);
            })
            .Configure(app =>
            {
                app.UseControlPlane();
                app.UseEndpoints(e => e.MapControlPlane());
            }));

    protected override void ConfigureWebHost(IWebHostBuilder builder) => builder.UseContentRoot(AppContext.BaseDirectory);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            _dir.Dispose();
        }
    }
}

internal sealed class FirstBootService(FirstBoot firstBoot, FirstBootOptions options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var errors = firstBoot.Run(options);
        Assert.Empty(errors);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
