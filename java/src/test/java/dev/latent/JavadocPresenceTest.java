package dev.latent;

import com.sun.source.tree.ClassTree;
import com.sun.source.tree.CompilationUnitTree;
import com.sun.source.tree.Tree;
import com.sun.source.util.DocTrees;
import com.sun.source.util.JavacTask;
import com.sun.source.util.TreePath;
import com.sun.source.util.TreePathScanner;
import org.junit.jupiter.api.Test;

import javax.lang.model.element.Modifier;
import javax.tools.JavaCompiler;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every public type of the library (src/main/java: the core; the CLI and the benchmarks are other modules) has a javadoc comment
 * with a non-empty first sentence. Parses the sources with javac's tree API (no compilation): about a second.
 */
class JavadocPresenceTest {
    static final Path SOURCES = Path.of("src/main/java");

    @Test
    void everyPublicTypeHasADocComment() throws IOException {
        assertTrue(Files.isDirectory(SOURCES), SOURCES.toAbsolutePath() + " not found (run from the java module)");
        List<Path> files;
        try (Stream<Path> s = Files.walk(SOURCES)) {
            files = s.filter(p -> p.toString().endsWith(".java")).sorted().toList();
        }
        assertTrue(files.size() > 50, "too few sources found: " + files.size());
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "no system Java compiler (a JDK is needed)");
        List<String> missing = new ArrayList<>();
        int[] checked = {0};
        try (StandardJavaFileManager fm = javac.getStandardFileManager(null, null, null)) {
            JavacTask task = (JavacTask) javac.getTask(null, fm, null, List.of("-proc:none"), null, fm.getJavaFileObjectsFromPaths(files));
            DocTrees docs = DocTrees.instance(task);
            for (CompilationUnitTree unit : task.parse()) {
                new TreePathScanner<Void, Void>() {
                    @Override
                    public Void visitClass(ClassTree c, Void v) {
                        TreePath path = getCurrentPath();
                        if (isPublic(c, path)) {
                            checked[0]++;
                            var doc = docs.getDocCommentTree(path);
                            if (doc == null || doc.getFirstSentence().isEmpty() || doc.getFirstSentence().toString().isBlank())
                                missing.add(unit.getSourceFile().getName() + ": " + c.getSimpleName());
                        }
                        return super.visitClass(c, v);
                    }
                }.scan(unit, null);
            }
        }
        assertTrue(checked[0] > 50, "too few public types found: " + checked[0]);
        assertTrue(missing.isEmpty(), "public types without a javadoc comment (a one-line summary at least):\n  "
                + String.join("\n  ", missing));
    }

    /** Declared public, or a member of an interface (implicitly public), inside public types all the way out. */
    static boolean isPublic(ClassTree c, TreePath path) {
        Tree parent = path.getParentPath().getLeaf();
        boolean self = c.getModifiers().getFlags().contains(Modifier.PUBLIC)
                || (parent instanceof ClassTree p && (p.getKind() == Tree.Kind.INTERFACE || p.getKind() == Tree.Kind.ANNOTATION_TYPE));
        if (!self) return false;
        return !(parent instanceof ClassTree p) || isPublic(p, path.getParentPath());
    }
}
