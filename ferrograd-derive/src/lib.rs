//! `#[derive(Module)]` for [ferrograd](https://docs.rs/ferrograd): a model's
//! parameter names, buffers, training mode and dropout RNG state, generated from
//! its fields.
//!
//! Use it through `ferrograd::nn::Module`, which names both the trait and this
//! derive (as `serde::Serialize` does): depend on `ferrograd` only. The derive
//! implements `ferrograd::nn::ModuleParams` (the plumbing half of a module);
//! `forward` stays yours, in an `impl Module for …` of its own. The full story,
//! with an example compiled as a test, is in the docs of `ferrograd::nn`.

#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    parse_quote, Data, DeriveInput, Fields, GenericArgument, GenericParam, Ident, PathArguments,
    Type, TypeParamBound, WherePredicate,
};

/// Derives `ferrograd::nn::ModuleParams` for a struct from its fields: the
/// parameters with PyTorch's dotted names, the buffers, a recursive
/// `set_training`, the training mode and the RNG states of the dropouts inside.
///
/// Write `forward` by hand in `impl Module for YourStruct`; the derive never
/// generates it. Use the derive through `ferrograd::nn::Module` (or
/// `ferrograd::nn::*`), which names the trait and this derive at once.
///
/// ```ignore
/// use ferrograd::nn::{Dropout, Linear, Module};
/// use ferrograd::{Element, Tensor};
///
/// #[derive(Module)]
/// struct Block<T: Element> {
///     attn: Linear<T>,       // "attn.weight", "attn.bias"
///     drop: Dropout,         // no parameters; set_training reaches it
/// }
///
/// #[derive(Module)]
/// struct Net<T: Element = f32> {
///     fc1: Linear<T>,                    // "fc1.weight", "fc1.bias"
///     blocks: Vec<Block<T>>,             // "blocks.0.attn.weight", …
///     head: Option<Linear<T>>,           // "head.weight" when Some, nothing when None
///     scale: Tensor<T>,                  // "scale"
///     #[module(buffer)]
///     running_mean: Tensor<T>,           // saved and loaded, not trained
///     #[module(skip)]
///     config: String,                    // neither a module nor a tensor
/// }
///
/// impl<T: Element> Module<T> for Net<T> {
///     fn forward(&self, x: &Tensor<T>) -> Tensor<T> { /* … */ }
/// }
/// ```
///
/// (This example is compiled and run in the docs of `ferrograd::nn`.)
///
/// # Fields
///
/// Each field is one of these, recognised by the last segment of its type's path:
///
/// | field type | contributes |
/// |---|---|
/// | `Tensor<T>` (or `Tensor`) | a parameter named by the field (`"scale"`) |
/// | anything else (`Linear<T>`, your own derived struct, a `BoxedModule<T>`) | a module: its names, prefixed by the field's (`"fc1.weight"`) |
/// | `Vec<X>` or an array `[X; N]` | each element, named by its index (`"blocks.0.…"`) |
/// | `Option<X>` | the value when `Some`, under the field's name; nothing when `None` |
/// | `Box<X>`, `Box<dyn Module<T> + …>` | what it points to |
///
/// These nest: `Vec<Option<Linear<T>>>` names `"layers.0.weight"`, skips the
/// `None`s and keeps the indices of the others. A tuple struct's fields are named
/// `"0"`, `"1"`, …. `PhantomData` fields are ignored. A type alias of `Tensor` is
/// not recognised (it is taken for a module): spell the field `Tensor<…>`.
///
/// # Attributes
///
/// | attribute | on | meaning |
/// |---|---|---|
/// | `#[module(skip)]` | a field | neither a module nor a tensor (a config, a size, a cache) |
/// | `#[module(buffer)]` | a `Tensor` field (or `Vec`/`Option`/`Box` of tensors) | saved and loaded with the parameters but not trained: listed by `named_buffers`, not by `named_parameters` |
/// | `#[module(flatten)]` | a field | its names are not prefixed by the field's name (`Vec<Linear>` gives `"0.weight"`: a container) |
/// | `#[module(training)]` | a `bool` field | the module's own mode: set by `set_training`, reported by `training_mode` |
/// | `#[module(element = f64)]` | the struct | the element type to implement for, when it is neither a type parameter nor evident from the fields |
///
/// # The element type
///
/// For a generic struct, the element type is the type parameter bounded by
/// `Element` (or, failing that, the one named `T`); other type parameters used in
/// module fields get a `ModuleParams<T>` bound. For a struct without one it is
/// `f64` when the field types mention `f64` (`Linear<f64>`, `Tensor<f64>`), else
/// `f32` (the default of `Tensor`); `#[module(element = …)]` overrides both.
///
/// # Errors
///
/// Enums, unions, unknown attributes, `buffer` on a module field, `training` on a
/// field that is not a `bool` and field types that are neither paths nor arrays
/// (references, tuples, function pointers) are compile errors pointing at the
/// offending token. A field that is not a module is reported by the compiler as
/// not implementing `ModuleParams`, at the field's type: mark it
/// `#[module(skip)]`.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Whether a tensor is trained or only saved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Parameter,
    Buffer,
}

/// How a field holds its tensors and modules.
enum Shape {
    Tensor,
    /// A module, with the type to name in the error when it is not one.
    Module(Box<Type>),
    /// `Vec<X>` or `[X; N]`: elements named by index.
    Seq(Box<Shape>),
    Opt(Box<Shape>),
    Boxed(Box<Shape>),
}

impl Shape {
    /// The innermost type: a module's type, or `None` for a tensor.
    fn module_type(&self) -> Option<&Type> {
        match self {
            Shape::Tensor => None,
            Shape::Module(ty) => Some(&**ty),
            Shape::Seq(s) | Shape::Opt(s) | Shape::Boxed(s) => s.module_type(),
        }
    }
}

/// One field that takes part.
struct Part {
    /// `self.name` or `self.0`.
    access: TokenStream2,
    /// The name its contents are prefixed with (`""` when flattened).
    name: String,
    shape: Shape,
    role: Role,
}

/// What a generated method collects or does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Parameters,
    Buffers,
    SetTraining,
    TrainingMode,
    RngStates,
    SetRngState,
}

/// The attributes of one field.
#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    buffer: bool,
    flatten: bool,
    training: bool,
}

const FIELD_ATTRS: &str = "`skip`, `buffer`, `flatten` or `training`";

fn field_attrs(field: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let flag = if meta.path.is_ident("skip") {
                &mut out.skip
            } else if meta.path.is_ident("buffer") {
                &mut out.buffer
            } else if meta.path.is_ident("flatten") {
                &mut out.flatten
            } else if meta.path.is_ident("training") {
                &mut out.training
            } else {
                let name = meta.path.to_token_stream().to_string().replace(' ', "");
                return Err(meta.error(format!(
                    "unknown attribute `module({name})` on a field; expected {FIELD_ATTRS}"
                )));
            };
            if *flag {
                return Err(meta.error("this attribute is given twice"));
            }
            *flag = true;
            Ok(())
        })?;
    }
    let exclusive = [(out.skip, "skip"), (out.training, "training")];
    for (set, name) in exclusive {
        if set && (out.skip as u8 + out.buffer as u8 + out.flatten as u8 + out.training as u8) > 1 {
            return Err(syn::Error::new_spanned(
                field,
                format!("`module({name})` cannot be combined with other module attributes"),
            ));
        }
    }
    Ok(out)
}

/// The struct-level `#[module(element = TYPE)]`.
fn element_attr(input: &DeriveInput) -> syn::Result<Option<Type>> {
    let mut element = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("element") {
                if element.is_some() {
                    return Err(meta.error("`element` is given twice"));
                }
                element = Some(meta.value()?.parse::<Type>()?);
                Ok(())
            } else {
                let name = meta.path.to_token_stream().to_string().replace(' ', "");
                Err(meta.error(format!(
                    "unknown attribute `module({name})` on a struct; expected \
                     `element = TYPE` (field attributes are {FIELD_ATTRS})"
                )))
            }
        })?;
    }
    Ok(element)
}

/// The one type argument of `Vec<X>`, `Option<X>`, `Box<X>`.
fn single_type_arg(args: &PathArguments) -> Option<&Type> {
    match args {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

fn classify(ty: &Type) -> syn::Result<Shape> {
    match ty {
        Type::Group(g) => classify(&g.elem),
        Type::Paren(p) => classify(&p.elem),
        Type::Array(a) => Ok(Shape::Seq(Box::new(classify(&a.elem)?))),
        Type::TraitObject(_) => Ok(Shape::Module(Box::new(ty.clone()))),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().expect("a path has a segment");
            let arg = single_type_arg(&last.arguments);
            Ok(match (last.ident.to_string().as_str(), arg) {
                ("Tensor", _) => Shape::Tensor,
                ("Vec", Some(a)) => Shape::Seq(Box::new(classify(a)?)),
                ("Option", Some(a)) => Shape::Opt(Box::new(classify(a)?)),
                ("Box", Some(a)) => Shape::Boxed(Box::new(classify(a)?)),
                _ => Shape::Module(Box::new(ty.clone())),
            })
        }
        Type::Path(_) => Ok(Shape::Module(Box::new(ty.clone()))),
        _ => Err(syn::Error::new_spanned(
            ty,
            "#[derive(Module)] cannot hold modules or tensors in this kind of type \
             (it knows paths such as Linear<T>, Tensor<T>, Vec<_>, Option<_>, Box<_>, \
             and arrays); mark the field #[module(skip)] if it holds neither",
        )),
    }
}

/// True for `PhantomData<…>` (by its last path segment): nothing to name.
fn is_phantom(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "PhantomData"))
}

/// True when the tokens of `ty` mention the identifier `name`.
fn mentions(ty: &Type, name: &Ident) -> bool {
    fn walk(tokens: TokenStream2, name: &Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => i == *name,
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), name),
            _ => false,
        })
    }
    walk(ty.to_token_stream(), name)
}

/// True when a bound list names `Element` (as `Element`, `ferrograd::Element`, …).
fn bounds_name_element<'a>(mut bounds: impl Iterator<Item = &'a TypeParamBound>) -> bool {
    bounds.any(|b| match b {
        TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == "Element"),
        _ => false,
    })
}

/// The element type, and whether it is one of the struct's type parameters.
fn element_type(input: &DeriveInput, parts: &[(Type, bool)]) -> syn::Result<(Type, Option<Ident>)> {
    let params: Vec<&syn::TypeParam> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    if let Some(ty) = element_attr(input)? {
        let param = params
            .iter()
            .find(|p| matches!(&ty, Type::Path(tp) if tp.path.is_ident(&p.ident)))
            .map(|p| p.ident.clone());
        return Ok((ty, param));
    }
    let where_bounds = |ident: &Ident| {
        input.generics.where_clause.as_ref().is_some_and(|w| {
            w.predicates.iter().any(|pred| match pred {
                WherePredicate::Type(pt) => {
                    matches!(&pt.bounded_ty, Type::Path(tp) if tp.path.is_ident(ident))
                        && bounds_name_element(pt.bounds.iter())
                }
                _ => false,
            })
        })
    };
    let bounded: Vec<&Ident> = params
        .iter()
        .filter(|p| bounds_name_element(p.bounds.iter()) || where_bounds(&p.ident))
        .map(|p| &p.ident)
        .collect();
    let chosen = match bounded.as_slice() {
        [one] => Some((*one).clone()),
        [] => params
            .iter()
            .find(|p| p.ident == "T")
            .map(|p| p.ident.clone()),
        _ => {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "#[derive(Module)]: several type parameters are bounded by Element; \
                 say which is the element type with #[module(element = T)] on the struct",
            ))
        }
    };
    if let Some(ident) = chosen {
        return Ok((parse_quote!(#ident), Some(ident)));
    }
    // No element parameter: f32 or f64 from the (non-skipped) field types.
    let f32_id: Ident = parse_quote!(f32);
    let f64_id: Ident = parse_quote!(f64);
    let has = |id: &Ident| parts.iter().any(|(ty, _)| mentions(ty, id));
    match (has(&f32_id), has(&f64_id)) {
        (true, true) => Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Module)]: the fields mention both f32 and f64; say which element \
             type to implement ModuleParams for with #[module(element = f32)] on the struct",
        )),
        (false, true) => Ok((parse_quote!(f64), None)),
        _ => Ok((parse_quote!(f32), None)),
    }
}

/// The expansion of `#[derive(Module)]`, or the error to report.
fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        Data::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                "#[derive(Module)] supports structs only; for an enum, implement \
                 ferrograd::nn::ModuleParams by hand",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                "#[derive(Module)] supports structs only, not unions",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut flags = Vec::new();
    let mut field_types = Vec::new();
    let iter: Vec<&syn::Field> = match fields {
        Fields::Named(f) => f.named.iter().collect(),
        Fields::Unnamed(f) => f.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    for (i, field) in iter.into_iter().enumerate() {
        let attrs = field_attrs(field)?;
        if attrs.skip || is_phantom(&field.ty) {
            continue;
        }
        let (access, name) = match &field.ident {
            Some(id) => (
                quote!(self.#id),
                id.to_string().trim_start_matches("r#").to_string(),
            ),
            None => {
                let index = syn::Index::from(i);
                (quote!(self.#index), i.to_string())
            }
        };
        if attrs.training {
            let is_bool =
                matches!(&field.ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("bool"));
            if !is_bool {
                return Err(syn::Error::new_spanned(
                    &field.ty,
                    "`module(training)` marks the bool field that holds the module's mode",
                ));
            }
            flags.push(access);
            continue;
        }
        let shape = classify(&field.ty)?;
        if let (true, Some(ty)) = (attrs.buffer, shape.module_type()) {
            return Err(syn::Error::new_spanned(
                ty,
                "`module(buffer)` applies to tensor fields (Tensor<T>, or a Vec, Option \
                 or Box of them); a module's buffers are its own business",
            ));
        }
        if attrs.flatten && matches!(shape, Shape::Tensor) {
            return Err(syn::Error::new_spanned(
                field,
                "`module(flatten)` would leave this tensor without a name; it applies to \
                 modules and collections",
            ));
        }
        field_types.push((field.ty.clone(), shape.module_type().is_some()));
        parts.push(Part {
            access,
            name: if attrs.flatten { String::new() } else { name },
            shape,
            role: if attrs.buffer {
                Role::Buffer
            } else {
                Role::Parameter
            },
        });
    }

    let (elem, elem_param) = element_type(input, &field_types)?;
    let mut generics = input.generics.clone();
    {
        let where_clause = generics.make_where_clause();
        if elem_param.is_some() {
            where_clause
                .predicates
                .push(parse_quote!(#elem: ::ferrograd::Element));
        }
        let others: Vec<Ident> = input
            .generics
            .type_params()
            .map(|p| p.ident.clone())
            .filter(|id| Some(id) != elem_param.as_ref())
            .collect();
        for part in &parts {
            if let Some(ty) = part.shape.module_type() {
                if others.iter().any(|id| mentions(ty, id)) {
                    where_clause
                        .predicates
                        .push(parse_quote!(#ty: ::ferrograd::nn::ModuleParams<#elem>));
                }
            }
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let name = &input.ident;

    let body = |pass: Pass| -> TokenStream2 {
        parts
            .iter()
            .map(|part| {
                let inner = walk(&part.shape, part.role, pass, &elem);
                if inner.is_empty() {
                    return inner;
                }
                let access = &part.access;
                let field_name = &part.name;
                if pass == Pass::SetTraining {
                    quote! { { let __r = &mut #access; #inner } }
                } else {
                    quote! { { let __n: &str = #field_name; let __r = &#access; #inner } }
                }
            })
            .collect()
    };
    let params = body(Pass::Parameters);
    let buffers = body(Pass::Buffers);
    let set_training = body(Pass::SetTraining);
    let rng_states = body(Pass::RngStates);
    let set_rng_state = body(Pass::SetRngState);
    let training_mode = match flags.first() {
        Some(flag) => quote! { ::std::option::Option::Some(#flag) },
        None => {
            let modes = body(Pass::TrainingMode);
            quote! {
                #[allow(unused_mut)]
                let mut __mode = ::std::option::Option::None;
                #modes
                __mode
            }
        }
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::ferrograd::nn::ModuleParams<#elem> for #name #ty_generics #where_clause {
            fn named_parameters(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::Tensor<#elem>)> {
                #[allow(unused_mut)]
                let mut __out = ::std::vec::Vec::new();
                #params
                __out
            }

            fn named_buffers(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::Tensor<#elem>)> {
                #[allow(unused_mut)]
                let mut __out = ::std::vec::Vec::new();
                #buffers
                __out
            }

            fn set_training(&mut self, __training: bool) {
                #( #flags = __training; )*
                #set_training
            }

            fn training_mode(&self) -> ::std::option::Option<bool> {
                #training_mode
            }

            fn named_rng_states(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::nn::RngState)> {
                #[allow(unused_mut)]
                let mut __out = ::std::vec::Vec::new();
                #rng_states
                __out
            }

            fn set_named_rng_state(&self, __name: &str, __state: ::ferrograd::nn::RngState) -> bool {
                #set_rng_state
                false
            }
        }

        // The same methods as inherent ones, so that `model.parameters()` works
        // with only `Module` (or nothing) imported; each calls the trait's.
        #[automatically_derived]
        #[allow(dead_code)]
        impl #impl_generics #name #ty_generics #where_clause {
            /// The trainable tensors with their dotted names (see
            /// `ModuleParams::named_parameters`).
            pub fn named_parameters(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::Tensor<#elem>)> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::named_parameters(self)
            }

            /// The trainable tensors (see `ModuleParams::parameters`).
            pub fn parameters(&self) -> ::std::vec::Vec<::ferrograd::Tensor<#elem>> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::parameters(self)
            }

            /// The tensors saved but not trained (see `ModuleParams::named_buffers`).
            pub fn named_buffers(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::Tensor<#elem>)> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::named_buffers(self)
            }

            /// Training (`true`) or evaluation mode, for every child (see
            /// `ModuleParams::set_training`).
            pub fn set_training(&mut self, training: bool) {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::set_training(self, training)
            }

            /// The mode, `None` when nothing inside depends on it (see
            /// `ModuleParams::training_mode`).
            pub fn training_mode(&self) -> ::std::option::Option<bool> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::training_mode(self)
            }

            /// Stops computing gradients for every parameter (see
            /// `ModuleParams::freeze`).
            pub fn freeze(&self) {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::freeze(self)
            }

            /// Computes gradients for every parameter again (see
            /// `ModuleParams::unfreeze`).
            pub fn unfreeze(&self) {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::unfreeze(self)
            }

            /// The state of every RNG inside, with dotted names (see
            /// `ModuleParams::named_rng_states`).
            pub fn named_rng_states(&self) -> ::std::vec::Vec<(::std::string::String, ::ferrograd::nn::RngState)> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::named_rng_states(self)
            }

            /// Restores RNG states saved from `named_rng_states` (see
            /// `ModuleParams::load_rng_states`).
            pub fn load_rng_states(&self, states: &[(::std::string::String, ::ferrograd::nn::RngState)]) -> ::ferrograd::Result<()> {
                <Self as ::ferrograd::nn::ModuleParams<#elem>>::load_rng_states(self, states)
            }
        }
    })
}

/// The statements for one pass over a value of `shape` held in `__r` (a
/// reference; `&mut` for `SetTraining`) and named `__n`.
fn walk(shape: &Shape, role: Role, pass: Pass, elem: &Type) -> TokenStream2 {
    let fg = quote!(::ferrograd::nn::__derive);
    match shape {
        Shape::Tensor => {
            let wanted = match pass {
                Pass::Parameters => role == Role::Parameter,
                Pass::Buffers => role == Role::Buffer,
                _ => false,
            };
            if wanted {
                quote! {
                    __out.push((::std::string::String::from(__n), ::std::clone::Clone::clone(__r)));
                }
            } else {
                TokenStream2::new()
            }
        }
        Shape::Module(ty) => {
            // Spanned at the field's type, so that a field that is not a module is
            // reported there.
            let mp = quote_spanned!(ty.span()=> <_ as ::ferrograd::nn::ModuleParams<#elem>>);
            match pass {
                Pass::Parameters => {
                    quote! { #fg::extend(&mut __out, __n, #mp::named_parameters(__r)); }
                }
                Pass::Buffers => {
                    quote! { #fg::extend(&mut __out, __n, #mp::named_buffers(__r)); }
                }
                Pass::RngStates => {
                    quote! { #fg::extend(&mut __out, __n, #mp::named_rng_states(__r)); }
                }
                Pass::SetTraining => quote! { #mp::set_training(__r, __training); },
                Pass::TrainingMode => {
                    quote! { __mode = #fg::merge_mode(__mode, #mp::training_mode(__r)); }
                }
                Pass::SetRngState => quote! {
                    if let ::std::option::Option::Some(__rest) = #fg::strip(__name, __n) {
                        if #mp::set_named_rng_state(__r, __rest, __state) {
                            return true;
                        }
                    }
                },
            }
        }
        Shape::Seq(inner) => {
            let body = walk(inner, role, pass, elem);
            if body.is_empty() {
                body
            } else if matches!(pass, Pass::SetTraining | Pass::TrainingMode) {
                // no names needed
                quote! { for __r in ::std::iter::IntoIterator::into_iter(__r) { #body } }
            } else {
                quote! {
                    for (__i, __r) in ::std::iter::Iterator::enumerate(::std::iter::IntoIterator::into_iter(__r)) {
                        let __s = #fg::index(__n, __i);
                        let __n: &str = &__s;
                        #body
                    }
                }
            }
        }
        Shape::Opt(inner) => {
            let body = walk(inner, role, pass, elem);
            if body.is_empty() {
                body
            } else {
                quote! { if let ::std::option::Option::Some(__r) = __r { #body } }
            }
        }
        Shape::Boxed(inner) => {
            let body = walk(inner, role, pass, elem);
            if body.is_empty() {
                body
            } else if pass == Pass::SetTraining {
                quote! { { let __r = &mut **__r; #body } }
            } else {
                quote! { { let __r = &**__r; #body } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(input: DeriveInput) -> String {
        expand(&input).unwrap_err().to_string()
    }

    fn expanded(input: DeriveInput) -> String {
        expand(&input).unwrap().to_string()
    }

    #[test]
    fn enums_and_unions_are_rejected() {
        let e = error(parse_quote! { enum E { A, B } });
        assert!(e.contains("supports structs only"), "{e}");
        let e = error(parse_quote! { union U { a: u32, b: f32 } });
        assert!(e.contains("not unions"), "{e}");
    }

    #[test]
    fn unknown_and_conflicting_attributes_are_rejected() {
        let e = error(parse_quote! { struct S { #[module(skipp)] a: Linear } });
        assert!(e.contains("unknown attribute `module(skipp)`"), "{e}");
        assert!(e.contains("`skip`, `buffer`"), "{e}");
        let e = error(parse_quote! { #[module(flatten)] struct S { a: Linear } });
        assert!(e.contains("on a struct"), "{e}");
        let e = error(parse_quote! { struct S { #[module(skip, buffer)] a: Tensor } });
        assert!(e.contains("`module(skip)` cannot be combined"), "{e}");
        let e = error(parse_quote! { struct S { #[module(buffer)] a: Vec<Linear> } });
        assert!(e.contains("applies to tensor fields"), "{e}");
        let e = error(parse_quote! { struct S { #[module(training)] a: u8 } });
        assert!(e.contains("bool field"), "{e}");
        let e = error(parse_quote! { struct S { #[module(flatten)] a: Tensor } });
        assert!(e.contains("without a name"), "{e}");
        let e = error(parse_quote! { struct S { a: &'static Linear } });
        assert!(e.contains("#[module(skip)]"), "{e}");
        let e = error(parse_quote! { struct S { #[module(buffer, buffer)] a: Tensor } });
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn element_type_is_the_bounded_parameter_or_inferred() {
        let out =
            expanded(parse_quote! { struct S<U: ferrograd::Element, M> { a: Tensor<U>, m: M } });
        assert!(out.contains("ModuleParams < U > for S < U , M >"), "{out}");
        assert!(
            out.contains("M : :: ferrograd :: nn :: ModuleParams < U >"),
            "{out}"
        );
        let out = expanded(parse_quote! { struct S { a: Linear<f64>, b: Tensor<f64> } });
        assert!(out.contains("ModuleParams < f64 > for S"), "{out}");
        let out = expanded(parse_quote! { struct S { a: Linear } });
        assert!(out.contains("ModuleParams < f32 > for S"), "{out}");
        let out = expanded(parse_quote! { #[module(element = f64)] struct S { a: Dropout } });
        assert!(out.contains("ModuleParams < f64 > for S"), "{out}");
        let e = error(parse_quote! { struct S { a: Linear<f32>, b: Tensor<f64> } });
        assert!(e.contains("both f32 and f64"), "{e}");
        let e = error(parse_quote! { struct S<A: Element, B: Element> { a: Tensor<A> } });
        assert!(e.contains("several type parameters"), "{e}");
    }

    #[test]
    fn names_and_roles_reach_the_generated_code() {
        let out = expanded(parse_quote! {
            struct S<T: Element> {
                fc: Linear<T>,
                #[module(buffer)] mean: Tensor<T>,
                #[module(flatten)] layers: Vec<Option<Box<Linear<T>>>>,
                #[module(skip)] config: Config,
                #[module(training)] training: bool,
            }
        });
        assert!(out.contains("\"fc\""), "{out}");
        assert!(out.contains("\"mean\""), "{out}");
        assert!(!out.contains("\"layers\""), "{out}");
        assert!(!out.contains("config"), "{out}");
        assert!(out.contains("self . training = __training"), "{out}");
        assert!(out.contains("Some (self . training)"), "{out}");
        let out = expanded(parse_quote! {
            struct S<T: Element>(Linear<T>, #[module(skip)] u8, Tensor<T>, PhantomData<T>);
        });
        assert!(!out.contains("self . 3"), "{out}");
        let out = expanded(parse_quote! { struct S(Linear, #[module(skip)] u8, Tensor); });
        assert!(out.contains("self . 0") && out.contains("\"0\""), "{out}");
        assert!(out.contains("self . 2") && out.contains("\"2\""), "{out}");
        assert!(!out.contains("self . 1"), "{out}");
    }
}
