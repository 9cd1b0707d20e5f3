package dev.latent.extend;

import dev.latent.Latent;
import org.junit.jupiter.api.Test;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.module.Configuration;
import java.lang.module.ModuleDescriptor;
import java.lang.module.ModuleFinder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The module descriptor as a consumer on the module path sees it. The tests themselves run on the class path (where no
 * module boundary exists), so this test loads the compiled classes as named module {@code dev.latent} in a module layer
 * of its own and checks, from this (unnamed, other) module: the raw binding, the CUDA backend and the ops are not
 * exported (a public method of {@code LatentNative} cannot even be looked up), the API packages are, every package of
 * the module is one or the other, and the module needs only java.base.
 */
class ModuleEncapsulationTest {
    /** Internal packages: exported to no one but the benchmark module. */
    static final Set<String> INTERNAL = Set.of("dev.latent.nativ", "dev.latent.cuda", "dev.latent.ops");
    static final Set<String> QUALIFIED_TARGETS = Set.of("dev.latent.bench");

    static Module loadAsNamedModule() throws Exception {
        Path classes = Path.of(Latent.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        assertTrue(Files.isRegularFile(classes.resolve("module-info.class")) || Files.isRegularFile(classes),
                "no module-info.class in " + classes + ": the core has no module descriptor");
        ModuleFinder finder = ModuleFinder.of(classes);
        Configuration cf = ModuleLayer.boot().configuration().resolve(finder, ModuleFinder.of(), Set.of("dev.latent"));
        ModuleLayer layer = ModuleLayer.boot().defineModulesWithOneLoader(cf, ClassLoader.getPlatformClassLoader());
        return layer.findModule("dev.latent").orElseThrow();
    }

    @Test
    void rawBindingIsNotReachableFromAnotherModule() throws Exception {
        Module latent = loadAsNamedModule();
        Module me = ModuleEncapsulationTest.class.getModule();
        assertTrue(latent.isNamed() && !latent.getDescriptor().isAutomatic(), "dev.latent must be an explicit module: " + latent.getDescriptor());
        assertFalse(me.isNamed(), "the test runs on the class path (the unnamed module)");
        for (String p : INTERNAL) {
            assertTrue(latent.getPackages().contains(p), p + " is a package of the module");
            assertFalse(latent.isExported(p), p + " is exported to everyone");
            assertFalse(latent.isExported(p, me), p + " is exported to the unnamed module");
            assertFalse(latent.isOpen(p, me), p + " is open to the unnamed module");
        }
        // A public static method of the raw binding, in another module's eyes: refused at lookup, before any call.
        Class<?> raw = Class.forName("dev.latent.nativ.LatentNative", false, latent.getClassLoader());
        assertEquals(latent, raw.getModule());
        var e = assertThrows(IllegalAccessException.class,
                () -> MethodHandles.publicLookup().findStatic(raw, "get", MethodType.methodType(raw)));
        assertTrue(e.getMessage().contains("dev.latent.nativ"), e.getMessage());
        assertThrows(IllegalAccessException.class, () -> raw.getMethod("get").invoke(null));
        // The same lookup on the public facade works: the refusal above is the module boundary, nothing else.
        Class<?> facade = Class.forName("dev.latent.Latent", false, latent.getClassLoader());
        MethodHandles.publicLookup().findStatic(facade, "threads", MethodType.methodType(int.class));
    }

    @Test
    void everyPackageIsExportedOrDeclaredInternal() throws Exception {
        Module latent = loadAsNamedModule();
        ModuleDescriptor d = latent.getDescriptor();
        Set<String> undecided = new TreeSet<>();
        for (String p : latent.getPackages()) {
            if (INTERNAL.contains(p)) continue;
            if (!latent.isExported(p)) undecided.add(p);
        }
        if (!undecided.isEmpty())
            fail("packages neither exported nor internal: " + undecided + " (a package's public types are unreachable on "
                    + "the module path unless java/src/main/java/module-info.java exports it; internal ones go in INTERNAL here)");
        for (ModuleDescriptor.Exports x : d.exports()) {
            if (!x.isQualified()) continue;
            assertTrue(INTERNAL.contains(x.source()), "qualified export of an API package: " + x);
            assertTrue(QUALIFIED_TARGETS.containsAll(x.targets()), "internal package " + x.source() + " exported to " + x.targets());
        }
        for (String api : new String[] {"dev.latent", "dev.latent.tensor", "dev.latent.autograd", "dev.latent.nn", "dev.latent.optim",
                "dev.latent.models.gpt", "dev.latent.serve", "dev.latent.data", "dev.latent.text", "dev.latent.io", "dev.latent.train"})
            assertTrue(latent.isExported(api), api + " is public API");
        assertEquals(Set.of("java.base"), d.requires().stream().map(ModuleDescriptor.Requires::name).collect(Collectors.toSet()),
                "the core needs java.base only");
    }
}
